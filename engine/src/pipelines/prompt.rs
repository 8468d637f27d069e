//! The text side of a Stable Diffusion pipeline: tokenizer + CLIP text encoder + any
//! textual-inversion embeddings, as diffusers' `encode_prompt` and `load_textual_inversion` do it.

use burn::tensor::{Device, Tensor};

use crate::device::load_dtype;
use crate::error::{EngineError, Result};
use crate::loaders::files::ModelFiles;
use crate::loaders::textual_inversion::TextualInversion;
use crate::loaders::weights::{WeightFiles, load_into_except};
use crate::models::clip::token_table::TokenTable;
use crate::models::clip::{ClipTextConfig, ClipTextModel};
use crate::models::clip::{ClipTokenizer, MAX_LENGTH};
use crate::models::lora::{AdaptableLayers, ScaledLora};

/// The token table's key in the text encoder's weights (after `text_model.`).
const TOKEN_TABLE: &str = "embeddings.token_embedding.weight";

pub struct PromptEncoder {
    pub tokenizer: ClipTokenizer,
    pub text_encoder: ClipTextModel,
    /// The rows of tokens added by [`add_placeholder_tokens`](Self::add_placeholder_tokens), when
    /// [`encode`](Self::encode) should use them: an avatar's preview while it trains.
    pub placeholder_vectors: Option<Tensor<2>>,
    /// The LoRAs that adapt the text encoder, and the encoder with them merged in: prompts are
    /// encoded with it while there is one; `text_encoder` stays as loaded.
    loras: Vec<ScaledLora>,
    adapted: Option<ClipTextModel>,
    device: Device,
}

impl PromptEncoder {
    /// Loads `tokenizer/` and `text_encoder/` of a diffusers folder; `variant` picks e.g. the
    /// `model.fp16.safetensors` weights when present. Weights are held as `device::load_dtype`
    /// says; the token table stays in host memory (`clip::token_table`).
    pub async fn load(
        files: &impl ModelFiles,
        variant: Option<&str>,
        device: &Device,
    ) -> Result<Self> {
        let tokenizer = ClipTokenizer::from_model(files).await?;
        let config: ClipTextConfig = files
            .config(
                "text_encoder/config.json",
                "the text encoder's configuration",
            )
            .await?;
        let weights = WeightFiles::find(files, "text_encoder", "model", variant).await?;
        let prefixed = format!("text_model.{TOKEN_TABLE}");
        let (mut text_encoder, aside) = load_into_except(
            config.init(device),
            files,
            &weights,
            &[(r"^text_model\.", "")],
            load_dtype(device),
            &[&prefixed, TOKEN_TABLE],
        )
        .await?;
        let path = files.display_path(&weights.files[0]);
        let [table] = <[_; 1]>::try_from(aside).map_err(|aside| EngineError::Tensor {
            path: path.clone(),
            tensor: TOKEN_TABLE.into(),
            problem: if aside.is_empty() {
                "is missing from the weights".into()
            } else {
                "is stored twice (with and without `text_model.`)".into()
            },
        })?;
        let (dtype, shape) = (table.dtype, table.shape);
        let expected = [config.vocab_size, config.hidden_size];
        text_encoder.embeddings.token_table = TokenTable::from_bytes(dtype, &shape, &table.bytes)
            .filter(|table| [table.rows(), table.width()] == expected)
            .ok_or_else(|| EngineError::Tensor {
                path,
                tensor: TOKEN_TABLE.into(),
                problem: format!(
                    "is a {dtype:?} tensor of shape {shape:?}, but this model needs a float table of {expected:?}"
                ),
            })?;
        Ok(PromptEncoder {
            tokenizer,
            text_encoder,
            placeholder_vectors: None,
            loras: Vec::new(),
            adapted: None,
            device: device.clone(),
        })
    }

    /// Adds a learned token: new ids after the vocabulary, its rows appended to the token table.
    pub fn add_embedding(
        &mut self,
        embedding: &TextualInversion,
        source: &std::path::Path,
    ) -> Result<()> {
        let dim = self.text_encoder.hidden_size();
        if embedding.dim() != dim {
            return Err(EngineError::Embedding {
                path: source.to_owned(),
                problem: format!(
                    "its vectors have {} values but this model's text encoder uses {dim}: it was made for a different model",
                    embedding.dim()
                ),
            });
        }
        let tokens = embedding.tokens();
        let ids = self
            .tokenizer
            .add_tokens(&tokens)
            .map_err(|error| EngineError::Embedding {
                path: source.to_owned(),
                problem: error.to_string(),
            })?;
        let rows = self.text_encoder.vocab_rows();
        // Ids are handed out after every existing row, so appending keeps id == row.
        if ids
            .iter()
            .enumerate()
            .any(|(offset, id)| *id as usize != rows + offset)
        {
            return Err(EngineError::Embedding {
                path: source.to_owned(),
                problem: "the tokenizer and the text encoder disagree on the vocabulary size"
                    .into(),
            });
        }
        let values: Vec<f32> = embedding.vectors.iter().flatten().copied().collect();
        self.text_encoder.embeddings.token_table.append(&values);
        self.refresh_loras()
    }

    /// diffusers' `maybe_convert_prompt`: a multi-vector token `<t>` becomes `<t> <t>_1 …`.
    pub fn expand_multi_vector_tokens(&self, prompt: &str) -> Result<String> {
        let mut unique: Vec<String> = self.tokenizer.tokens(prompt)?;
        unique.sort();
        unique.dedup();
        let mut prompt = prompt.to_owned();
        for token in unique
            .iter()
            .filter(|token| self.tokenizer.is_added_token(token))
        {
            let mut replacement = token.clone();
            let mut index = 1;
            while self.tokenizer.is_added_token(&format!("{token}_{index}")) {
                replacement.push_str(&format!(" {token}_{index}"));
                index += 1;
            }
            prompt = prompt.replace(token.as_str(), &replacement);
        }
        Ok(prompt)
    }

    /// The 77 ids the text encoder sees for `prompt`.
    pub fn input_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode(&self.expand_multi_vector_tokens(prompt)?)
    }

    /// Adds `tokens` to the tokenizer only; their vectors are given to each
    /// [`encode_with_vectors`](Self::encode_with_vectors) call instead (avatar training).
    /// Returns their ids, which follow the text encoder's rows.
    pub fn add_placeholder_tokens(&mut self, tokens: &[String]) -> Result<Vec<u32>> {
        let ids = self.tokenizer.add_tokens(tokens)?;
        let rows = self.text_encoder.vocab_rows();
        if ids
            .iter()
            .enumerate()
            .any(|(offset, id)| *id as usize != rows + offset)
        {
            return Err(EngineError::Usage(
                "the tokenizer and the text encoder disagree on the vocabulary size".into(),
            ));
        }
        Ok(ids)
    }

    /// Like [`encode`](Self::encode), with `vectors` `[n, hidden]` as the rows of the tokens
    /// added by [`add_placeholder_tokens`](Self::add_placeholder_tokens).
    pub fn encode_with_vectors(&self, prompts: &[&str], vectors: Tensor<2>) -> Result<Tensor<3>> {
        self.encoder()
            .forward_with_extra_rows(&self.ids(prompts)?, prompts.len(), Some(vectors))
    }

    /// The ids of `prompts`, one after another.
    fn ids(&self, prompts: &[&str]) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(prompts.len() * MAX_LENGTH);
        for prompt in prompts {
            ids.extend(self.input_ids(prompt)?);
        }
        Ok(ids)
    }

    /// Last hidden states `[prompts, 77, hidden]`.
    pub fn encode(&self, prompts: &[&str]) -> Result<Tensor<3>> {
        self.encoder().forward_with_extra_rows(
            &self.ids(prompts)?,
            prompts.len(),
            self.placeholder_vectors.clone(),
        )
    }

    /// The text encoder prompts go through: with the LoRAs when there are any.
    fn encoder(&self) -> &ClipTextModel {
        self.adapted.as_ref().unwrap_or(&self.text_encoder)
    }

    /// Encodes prompts with `loras` (the text-encoder layers of each file, at its scale) from
    /// now on; an empty list removes them. On error nothing changes.
    pub fn set_loras(&mut self, loras: &[ScaledLora]) -> Result<()> {
        let layers = AdaptableLayers::of_text_encoder(&self.text_encoder);
        self.adapted =
            crate::models::lora::adapt(&self.text_encoder, &layers, loras, &self.device, true)?;
        self.loras = loras.to_vec();
        Ok(())
    }

    /// After the token table grew: the adapted encoder is rebuilt from the new table.
    fn refresh_loras(&mut self) -> Result<()> {
        if self.loras.is_empty() {
            return Ok(());
        }
        let loras = std::mem::take(&mut self.loras);
        self.set_loras(&loras)
    }
}
