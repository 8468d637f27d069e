//! CLIP's text transformer (`transformers.CLIPTextModel`), the prompt encoder of Stable Diffusion.
//!
//! Field names are the checkpoint's key segments, so a parameter's path is its safetensors key
//! (`encoder.layers.0.self_attn.q_proj.weight`); see `loaders/weights.rs` for the loading.

use crate::device::{compute_dtype, upcast};
use crate::error::{EngineError, Result};
use crate::models::attention::attention_weights;
use crate::models::clip::token_table::TokenTable;
use crate::models::held_weights::for_compute;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::Deserialize;

/// `text_encoder/config.json`; defaults are transformers' `CLIPTextConfig` defaults.
#[derive(Clone, Debug, Deserialize)]
pub struct ClipTextConfig {
    #[serde(default = "defaults::vocab_size")]
    pub vocab_size: usize,
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub hidden_act: Activation,
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
}

mod defaults {
    pub fn vocab_size() -> usize {
        49408
    }
    pub fn hidden_size() -> usize {
        512
    }
    pub fn intermediate_size() -> usize {
        2048
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        8
    }
    pub fn max_position_embeddings() -> usize {
        77
    }
    pub fn layer_norm_eps() -> f64 {
        1e-5
    }
}

/// The MLP's activation, `hidden_act` in the config.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`: OpenAI CLIP, SD 1.x.
    #[default]
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact (erf) GELU: OpenCLIP ViT-H, SD 2.x and SD-Turbo.
    #[serde(rename = "gelu")]
    Gelu,
}

impl crate::loaders::files::Checked for ClipTextConfig {
    fn check(&self) -> std::result::Result<(), String> {
        use crate::loaders::limits::{
            MAX_CHANNELS, MAX_LAYERS, MAX_POSITIONS, MAX_VOCABULARY, count, positive,
        };
        count("vocab_size", self.vocab_size, 1, MAX_VOCABULARY)?;
        count("hidden_size", self.hidden_size, 1, MAX_CHANNELS)?;
        count(
            "intermediate_size",
            self.intermediate_size,
            1,
            4 * MAX_CHANNELS,
        )?;
        count("num_hidden_layers", self.num_hidden_layers, 1, MAX_LAYERS)?;
        count(
            "num_attention_heads",
            self.num_attention_heads,
            1,
            self.hidden_size,
        )?;
        let positions = crate::models::clip::MAX_LENGTH;
        count(
            "max_position_embeddings",
            self.max_position_embeddings,
            positions,
            MAX_POSITIONS,
        )?;
        positive("layer_norm_eps", self.layer_norm_eps)?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }
}

impl ClipTextConfig {
    pub fn init(&self, device: &Device) -> ClipTextModel {
        ClipTextModel {
            embeddings: ClipTextEmbeddings {
                token_table: TokenTable::empty(self.hidden_size),
                position_embedding: EmbeddingConfig::new(
                    self.max_position_embeddings,
                    self.hidden_size,
                )
                .init(device),
            },
            encoder: ClipEncoder {
                layers: (0..self.num_hidden_layers)
                    .map(|_| self.init_layer(device))
                    .collect(),
            },
            final_layer_norm: self.layer_norm(device),
            num_heads: self.num_attention_heads,
            activation: self.hidden_act,
        }
    }

    fn init_layer(&self, device: &Device) -> ClipEncoderLayer {
        let linear = |inputs, outputs| LinearConfig::new(inputs, outputs).init(device);
        let hidden = self.hidden_size;
        ClipEncoderLayer {
            self_attn: ClipAttention {
                q_proj: linear(hidden, hidden),
                k_proj: linear(hidden, hidden),
                v_proj: linear(hidden, hidden),
                out_proj: linear(hidden, hidden),
            },
            layer_norm1: self.layer_norm(device),
            mlp: ClipMlp {
                fc1: linear(hidden, self.intermediate_size),
                fc2: linear(self.intermediate_size, hidden),
            },
            layer_norm2: self.layer_norm(device),
        }
    }

    fn layer_norm(&self, device: &Device) -> LayerNorm {
        LayerNormConfig::new(self.hidden_size)
            .with_epsilon(self.layer_norm_eps)
            .init(device)
    }
}

#[derive(Module, Debug)]
pub struct ClipTextModel {
    pub embeddings: ClipTextEmbeddings,
    pub encoder: ClipEncoder,
    pub final_layer_norm: LayerNorm,
    num_heads: usize,
    #[module(skip)]
    activation: Activation,
}

#[derive(Module, Debug)]
pub struct ClipTextEmbeddings {
    /// `embeddings.token_embedding.weight`, held apart from the device (see `token_table.rs`).
    #[module(skip)]
    pub token_table: TokenTable,
    pub position_embedding: Embedding,
}

#[derive(Module, Debug)]
pub struct ClipEncoder {
    pub layers: Vec<ClipEncoderLayer>,
}

#[derive(Module, Debug)]
pub struct ClipEncoderLayer {
    pub self_attn: ClipAttention,
    pub layer_norm1: LayerNorm,
    pub mlp: ClipMlp,
    pub layer_norm2: LayerNorm,
}

#[derive(Module, Debug)]
pub struct ClipAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
}

#[derive(Module, Debug)]
pub struct ClipMlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

impl ClipTextModel {
    /// Token ids, `batch` rows of equal length one after another → last hidden state
    /// `[batch, seq, hidden]` (after the final layer norm), which is what Stable Diffusion
    /// conditions on.
    pub fn forward(&self, input_ids: &[u32], batch: usize) -> Result<Tensor<3>> {
        self.forward_with_extra_rows(input_ids, batch, None)
    }

    /// [`forward`](Self::forward) with `extra` rows `[n, hidden]` after the token table for this
    /// call only: ids past the table pick them. Avatar training passes its trainable vectors
    /// here, so gradients reach them and nothing else.
    pub fn forward_with_extra_rows(
        &self,
        input_ids: &[u32],
        batch: usize,
        extra: Option<Tensor<2>>,
    ) -> Result<Tensor<3>> {
        let this = for_compute(self);
        let device = this.embeddings.position_embedding.weight.device();
        let dtype = compute_dtype(&device);
        let seq_len = input_ids.len() / batch.max(1);
        let table = &this.embeddings.token_table;
        let (rows, width) = (table.rows(), table.width());
        let extra_rows = extra.as_ref().map_or(0, |extra| extra.dims()[0]);
        if batch == 0 || input_ids.len() != batch * seq_len {
            return Err(EngineError::Usage(format!(
                "{} token ids do not make {batch} prompts of equal length",
                input_ids.len()
            )));
        }
        if let Some(id) = input_ids
            .iter()
            .find(|id| **id as usize >= rows + extra_rows)
        {
            return Err(EngineError::Usage(format!(
                "token id {id} is past the text encoder's {} rows",
                rows + extra_rows
            )));
        }
        let gathered = TensorData::new(table.gather(input_ids), [batch, seq_len, width]);
        let mut tokens = Tensor::<3>::from_data(gathered, (&device, dtype));
        if let Some(extra) = extra.filter(|_| extra_rows > 0) {
            // An avatar's vectors train in f32; the model may compute in f16.
            let picks: Vec<i64> = input_ids
                .iter()
                .map(|id| (*id as usize).saturating_sub(rows) as i64)
                .collect();
            let picks =
                Tensor::<1, Int>::from_data(TensorData::new(picks, [batch * seq_len]), &device);
            let picked = extra
                .cast(dtype)
                .select(0, picks)
                .reshape([batch, seq_len, width]);
            let past_table: Vec<bool> = input_ids.iter().map(|id| *id as usize >= rows).collect();
            let past_table = Tensor::<3, Bool>::from_data(
                TensorData::new(past_table, [batch, seq_len, 1]),
                &device,
            )
            .expand([batch, seq_len, width]);
            tokens = tokens.mask_where(past_table, picked);
        }
        let positions = Tensor::<1, Int>::arange(0..seq_len as i64, &device).unsqueeze::<2>();
        let hidden = tokens + this.embeddings.position_embedding.forward(positions);
        let mask = causal_mask(seq_len, &device);
        let hidden = this.encoder.layers.iter().fold(hidden, |hidden, layer| {
            layer.forward(hidden, &mask, this.num_heads, this.activation)
        });
        Ok(this.final_layer_norm.forward(hidden))
    }

    /// The number of token-embedding rows (vocabulary plus added tokens).
    pub fn vocab_rows(&self) -> usize {
        self.embeddings.token_table.rows()
    }

    pub fn hidden_size(&self) -> usize {
        self.embeddings.token_table.width()
    }
}

impl ClipEncoderLayer {
    fn forward(
        &self,
        hidden: Tensor<3>,
        mask: &Tensor<4, Bool>,
        num_heads: usize,
        activation: Activation,
    ) -> Tensor<3> {
        let attended =
            self.self_attn
                .forward(self.layer_norm1.forward(hidden.clone()), mask, num_heads);
        let hidden = hidden + attended;
        let transformed = self
            .mlp
            .forward(self.layer_norm2.forward(hidden.clone()), activation);
        hidden + transformed
    }
}

impl ClipAttention {
    fn forward(&self, hidden: Tensor<3>, mask: &Tensor<4, Bool>, num_heads: usize) -> Tensor<3> {
        let [batch, seq_len, width] = hidden.dims();
        let head_dim = width / num_heads;
        let heads = |projected: Tensor<3>| {
            projected
                .reshape([batch, seq_len, num_heads, head_dim])
                .swap_dims(1, 2)
        };
        let query = heads(self.q_proj.forward(hidden.clone())) * (head_dim as f64).powf(-0.5);
        let key = heads(self.k_proj.forward(hidden.clone()));
        let value = heads(self.v_proj.forward(hidden));
        let weights = attention_weights(
            upcast(query),
            upcast(key.swap_dims(2, 3)),
            Some(mask),
            value.dtype(),
        );
        let context = weights.matmul(value);
        self.out_proj
            .forward(context.swap_dims(1, 2).reshape([batch, seq_len, width]))
    }
}

impl ClipMlp {
    fn forward(&self, hidden: Tensor<3>, activation: Activation) -> Tensor<3> {
        let hidden = self.fc1.forward(hidden);
        let hidden = match activation {
            Activation::Gelu => gelu(hidden),
            Activation::QuickGelu => hidden.clone() * sigmoid(hidden * 1.702),
        };
        self.fc2.forward(hidden)
    }
}

/// True where a token would look ahead: `[1, 1, seq, seq]`, broadcast over batch and heads.
fn causal_mask(seq_len: usize, device: &Device) -> Tensor<4, Bool> {
    let future: Vec<bool> = (0..seq_len)
        .flat_map(|row| (0..seq_len).map(move |column| column > row))
        .collect();
    Tensor::<2, Bool>::from_data(TensorData::new(future, [seq_len, seq_len]), device)
        .unsqueeze::<4>()
}
