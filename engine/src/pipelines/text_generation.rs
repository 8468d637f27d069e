//! Text generation, the story writer's recipe: 1 load a language model (a GGUF file or a
//! transformers folder) with its tokenizer, 2 read the prompt in one batch into a key/value
//! cache made for the context needed, 3 choose tokens one at a time ([`crate::sampling`]),
//! streaming each to a callback that may stop it, until an end token or the token budget.

use burn::tensor::Device;

use crate::device::read_values;
use crate::error::{EngineError, Result};
use crate::loaders::files::ModelFiles;
use crate::loaders::weights::{WeightFiles, load_into};
use crate::models::llama::config::LlamaConfig;
use crate::models::llama::{ChatTemplate, KvCache, LanguageTokenizer, LlamaForCausalLM, gguf};
use crate::sampling::{Sampler, Sampling};

/// A language model ready to write.
#[derive(Debug)]
pub struct LanguageModel {
    pub model: LlamaForCausalLM,
    pub tokenizer: LanguageTokenizer,
    pub config: LlamaConfig,
    /// Tokens that end a reply.
    pub end_ids: Vec<u32>,
    /// The model's chat template, from `tokenizer_config.json` or the GGUF.
    pub chat_template: Option<ChatTemplate>,
}

/// One token of a reply as it is written.
#[derive(Debug)]
pub struct Token<'a> {
    pub id: u32,
    /// The text this token completes (empty while a character's bytes are still arriving).
    pub text: &'a str,
}

/// What a token callback wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Continue,
    Stop,
}

/// A finished reply.
#[derive(Debug)]
pub struct Completion {
    /// The generated ids (an end token included, as transformers' `generate` returns it).
    pub ids: Vec<u32>,
    pub text: String,
    /// The vocabulary's scores at the prompt's last position.
    pub prompt_logits: Vec<f32>,
    pub prompt_seconds: f64,
    pub generation_seconds: f64,
    /// True when the callback stopped it.
    pub stopped: bool,
}

#[derive(serde::Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    chat_template: Option<serde_json::Value>,
    #[serde(default)]
    bos_token: Option<serde_json::Value>,
    #[serde(default)]
    eos_token: Option<serde_json::Value>,
}

/// A special token as `tokenizer_config.json` writes it: text, or an `AddedToken` object.
fn token_text(value: Option<serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(text) => Some(text),
        serde_json::Value::Object(object) => object.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

#[derive(serde::Deserialize)]
struct GenerationConfig {
    #[serde(default)]
    eos_token_id: Option<crate::models::llama::config::TokenIds>,
}

impl LanguageModel {
    /// Loads from `files`: the GGUF file `gguf_file` in it, or (`None`) the transformers folder
    /// it is (`config.json`, `*.safetensors` or shards, `tokenizer.json`).
    pub async fn load(
        files: &impl ModelFiles,
        gguf_file: Option<&str>,
        device: &Device,
    ) -> Result<Self> {
        match gguf_file {
            Some(relative) => {
                let header = gguf::read_header(files, relative).await?;
                let path = files.display_path(relative);
                let config = gguf::config(&header, &path)?;
                let tokenizer = LanguageTokenizer::from_gguf(&header, &path)?;
                let model = gguf::load(files, relative, &header, &config, device).await?;
                let token = |key: &str| {
                    let id = header.get(key)?.as_u64()?;
                    let tokens = header.get("tokenizer.ggml.tokens")?.as_strings()?;
                    tokens.get(usize::try_from(id).ok()?).cloned()
                };
                let chat_template = header
                    .get("tokenizer.chat_template")
                    .and_then(|value| value.as_str())
                    .map(|source| ChatTemplate {
                        source: source.to_owned(),
                        bos_token: token("tokenizer.ggml.bos_token_id"),
                        eos_token: token("tokenizer.ggml.eos_token_id"),
                    });
                let end_ids = config
                    .eos_token_id
                    .as_ref()
                    .map(|ids| ids.ids())
                    .unwrap_or_default();
                Self::checked(model, tokenizer, config, end_ids, chat_template)
            }
            None => {
                let config: LlamaConfig = files
                    .config("config.json", "the language model's configuration")
                    .await?;
                let tokenizer = LanguageTokenizer::from_json(
                    &files
                        .require("tokenizer.json", "the language model's tokenizer")
                        .await?,
                    &files.display_path("tokenizer.json"),
                )?;
                let chat_template = match files.read("tokenizer_config.json").await? {
                    Some(bytes) => {
                        let config: TokenizerConfig = crate::loaders::files::parse_json(
                            &bytes,
                            &files.display_path("tokenizer_config.json"),
                            "the tokenizer's configuration",
                        )?;
                        config
                            .chat_template
                            .and_then(|template| template.as_str().map(str::to_owned))
                            .map(|source| ChatTemplate {
                                source,
                                bos_token: token_text(config.bos_token),
                                eos_token: token_text(config.eos_token),
                            })
                    }
                    None => None,
                };
                let mut end_ids = config
                    .eos_token_id
                    .as_ref()
                    .map(|ids| ids.ids())
                    .unwrap_or_default();
                if let Some(bytes) = files.read("generation_config.json").await? {
                    let generation: GenerationConfig = crate::loaders::files::parse_json(
                        &bytes,
                        &files.display_path("generation_config.json"),
                        "the generation settings",
                    )?;
                    if let Some(ids) = generation.eos_token_id {
                        end_ids.extend(ids.ids());
                    }
                }
                let weights = WeightFiles::find(files, "", "model", None).await?;
                let model = load_into(
                    config.init(device),
                    files,
                    &weights,
                    &[],
                    Some(crate::device::compute_dtype(device)),
                )
                .await?;
                Self::checked(model, tokenizer, config, end_ids, chat_template)
            }
        }
    }

    fn checked(
        model: LlamaForCausalLM,
        tokenizer: LanguageTokenizer,
        config: LlamaConfig,
        mut end_ids: Vec<u32>,
        chat_template: Option<ChatTemplate>,
    ) -> Result<Self> {
        end_ids.sort_unstable();
        end_ids.dedup();
        end_ids.retain(|&id| (id as usize) < config.vocab_size);
        Ok(LanguageModel {
            model,
            tokenizer,
            config,
            end_ids,
            chat_template,
        })
    }

    /// A cache for a prompt of `prompt_tokens` and a reply of `max_tokens` (within the model's
    /// context).
    pub fn cache_for(&self, prompt_tokens: usize, max_tokens: usize) -> Result<KvCache> {
        let needed = (prompt_tokens + max_tokens).min(self.config.max_position_embeddings);
        KvCache::new(&self.model, needed.max(1))
    }

    /// Reads `ids` after the positions in `cache` and returns the vocabulary's scores at the
    /// last of them.
    pub async fn read(&self, ids: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let hidden = self.model.forward(ids, cache)?;
        let last = hidden.narrow(1, ids.len() - 1, 1);
        read_values(self.model.logits(last)).await
    }

    /// Continues `prompt` (token ids) by up to `max_tokens` tokens, streaming each to `on_token`.
    pub async fn complete(
        &self,
        prompt: &[u32],
        max_tokens: usize,
        sampling: Sampling,
        cache: &mut KvCache,
        mut on_token: impl FnMut(Token<'_>) -> Next,
    ) -> Result<Completion> {
        crate::sampling::check(&sampling).map_err(EngineError::Usage)?;
        if prompt.is_empty() {
            return Err(EngineError::Usage(
                "the prompt has no tokens; a model needs at least one to continue".into(),
            ));
        }
        cache.clear();
        let started = web_time::Instant::now();
        let prompt_logits = self.read(prompt, cache).await?;
        let prompt_seconds = started.elapsed().as_secs_f64();
        let started = web_time::Instant::now();
        let mut sampler = Sampler::new(sampling);
        let mut history = prompt.to_vec();
        let mut ids = Vec::new();
        let mut text = String::new();
        let mut logits = prompt_logits.clone();
        let mut stopped = false;
        while ids.len() < max_tokens {
            let id = sampler.next(logits, &history);
            ids.push(id);
            history.push(id);
            // Decoding the whole reply keeps characters whose bytes span tokens whole.
            let decoded = self.tokenizer.decode(&ids)?;
            let piece = match decoded.strip_prefix(text.as_str()) {
                Some(piece) if !decoded.ends_with('\u{FFFD}') => piece.to_owned(),
                _ => String::new(),
            };
            text.push_str(&piece);
            if on_token(Token { id, text: &piece }) == Next::Stop {
                stopped = true;
                break;
            }
            if self.end_ids.contains(&id)
                || ids.len() == max_tokens
                || cache.len() == cache.capacity()
            {
                break;
            }
            crate::runtime::yield_now().await;
            logits = self.read(&[id], cache).await?;
        }
        Ok(Completion {
            text: self.tokenizer.decode(&ids)?,
            ids,
            prompt_logits,
            prompt_seconds,
            generation_seconds: started.elapsed().as_secs_f64(),
            stopped,
        })
    }
}
