//! A language model's shape, from transformers' `config.json` or a GGUF's metadata, checked
//! before anything is built from it.

use serde::Deserialize;

use crate::loaders::files::Checked;
use crate::loaders::gguf::Gguf;
use crate::loaders::limits::{MAX_CHANNELS, MAX_LAYERS, MAX_VOCABULARY, count, positive};

/// Positions a language model may be asked to read (SmolLM2's 8,192; Qwen2.5's 32,768).
pub const MAX_CONTEXT: usize = 1 << 17;

/// The two families, which differ in their attention's biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `LlamaForCausalLM` (SmolLM2): biases only where `attention_bias` says.
    Llama,
    /// `Qwen2ForCausalLM` (Qwen2.5): q, k and v projections always have biases.
    Qwen2,
}

/// transformers' `LlamaConfig` / `Qwen2Config`, the fields the model uses; defaults are theirs.
#[derive(Clone, Debug, Deserialize)]
pub struct LlamaConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: fewer key/value heads than query heads (default: as many).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "defaults::max_position_embeddings")]
    pub max_position_embeddings: usize,
    #[serde(default = "defaults::rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// transformers 4.x keeps the rotary base here, 5.x in `rope_parameters`.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
    #[serde(default)]
    pub use_sliding_window: bool,
    /// The tokens that end a reply (one id or several).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn ids(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

mod defaults {
    pub fn max_position_embeddings() -> usize {
        2048
    }
    pub fn rms_norm_eps() -> f64 {
        1e-6
    }
    pub fn hidden_act() -> String {
        "silu".into()
    }
}

impl LlamaConfig {
    pub fn family(&self) -> Family {
        match self.model_type.as_str() {
            "qwen2" => Family::Qwen2,
            _ => Family::Llama,
        }
    }

    pub fn key_value_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_size(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn rotary_base(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|rope| rope.rope_theta)
            .or(self.rope_theta)
            .unwrap_or(10_000.0)
    }

    /// Whether q, k and v projections carry biases.
    pub fn qkv_bias(&self) -> bool {
        self.family() == Family::Qwen2 || self.attention_bias
    }

    /// The output projection's bias (Llama's `attention_bias` covers it; Qwen2 has none).
    pub fn output_bias(&self) -> bool {
        self.family() == Family::Llama && self.attention_bias
    }

    /// The shape a GGUF's metadata describes (llama.cpp's keys, as transformers maps them).
    pub fn from_gguf(gguf: &Gguf, has_output: bool) -> Result<Self, String> {
        let architecture = gguf
            .get("general.architecture")
            .and_then(|value| value.as_str())
            .ok_or("has no `general.architecture`")?;
        if !matches!(architecture, "llama" | "qwen2") {
            return Err(format!(
                "holds a `{architecture}` model; the story writer runs Llama (SmolLM2) and Qwen2 models"
            ));
        }
        let number = |key: &str| -> Result<Option<u64>, String> {
            match gguf.get(&format!("{architecture}.{key}")) {
                None => Ok(None),
                Some(value) => value
                    .as_u64()
                    .filter(|&value| value <= 1 << 32)
                    .map(Some)
                    .ok_or_else(|| format!("has a `{architecture}.{key}` that is not a count")),
            }
        };
        let required = |key: &str| -> Result<usize, String> {
            number(key)?
                .map(|value| value as usize)
                .ok_or_else(|| format!("has no `{architecture}.{key}`"))
        };
        let float = |key: &str| -> Result<Option<f64>, String> {
            match gguf.get(&format!("{architecture}.{key}")) {
                None => Ok(None),
                Some(value) => value
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| format!("has a `{architecture}.{key}` that is not a number")),
            }
        };
        if let Some(kind) = gguf
            .get(&format!("{architecture}.rope.scaling.type"))
            .and_then(|value| value.as_str())
            .filter(|kind| *kind != "none")
        {
            return Err(format!(
                "scales its rotary embeddings (`{kind}`), which this engine does not do yet"
            ));
        }
        let vocab_size = match number("vocab_size")? {
            Some(size) => size as usize,
            None => gguf
                .get("tokenizer.ggml.tokens")
                .and_then(|value| value.as_strings())
                .map(<[String]>::len)
                .ok_or("has neither a vocabulary size nor a vocabulary")?,
        };
        let heads = required("attention.head_count")?;
        let hidden_size = required("embedding_length")?;
        let head_dim = number("attention.key_length")?
            .or(number("rope.dimension_count")?)
            .map(|size| size as usize);
        Ok(LlamaConfig {
            model_type: architecture.to_owned(),
            vocab_size,
            hidden_size,
            intermediate_size: required("feed_forward_length")?,
            num_hidden_layers: required("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: number("attention.head_count_kv")?.map(|heads| heads as usize),
            head_dim,
            max_position_embeddings: number("context_length")?
                .map_or(defaults::max_position_embeddings(), |length| {
                    length as usize
                }),
            rms_norm_eps: float("attention.layer_norm_rms_epsilon")?
                .unwrap_or(defaults::rms_norm_eps()),
            rope_theta: float("rope.freq_base")?,
            rope_parameters: None,
            rope_scaling: None,
            tie_word_embeddings: !has_output,
            attention_bias: false,
            mlp_bias: false,
            hidden_act: defaults::hidden_act(),
            use_sliding_window: false,
            eos_token_id: gguf
                .get("tokenizer.ggml.eos_token_id")
                .and_then(|value| value.as_u64())
                .and_then(|id| u32::try_from(id).ok())
                .map(TokenIds::One),
        })
    }
}

impl Checked for LlamaConfig {
    fn check(&self) -> Result<(), String> {
        if !matches!(self.model_type.as_str(), "llama" | "qwen2") {
            return Err(format!(
                "is a `{}` model; the story writer runs Llama (SmolLM2) and Qwen2 models",
                self.model_type
            ));
        }
        count("vocab_size", self.vocab_size, 1, MAX_VOCABULARY)?;
        count("hidden_size", self.hidden_size, 1, MAX_CHANNELS)?;
        count(
            "intermediate_size",
            self.intermediate_size,
            1,
            4 * MAX_CHANNELS,
        )?;
        count("num_hidden_layers", self.num_hidden_layers, 1, MAX_LAYERS)?;
        count("num_attention_heads", self.num_attention_heads, 1, 256)?;
        count("num_key_value_heads", self.key_value_heads(), 1, 256)?;
        count("head_dim", self.head_size(), 2, 1024)?;
        count(
            "max_position_embeddings",
            self.max_position_embeddings,
            1,
            MAX_CONTEXT,
        )?;
        positive("rms_norm_eps", self.rms_norm_eps)?;
        positive("rope_theta", self.rotary_base())?;
        if !self
            .num_attention_heads
            .is_multiple_of(self.key_value_heads())
        {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.key_value_heads()
            ));
        }
        if !self.head_size().is_multiple_of(2) {
            return Err(format!(
                "head_dim {} is odd; rotary embeddings need pairs",
                self.head_size()
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        let scaled = [&self.rope_scaling, &self.rope_parameters]
            .into_iter()
            .flatten()
            .filter_map(|rope| rope.rope_type.as_deref())
            .find(|kind| *kind != "default");
        if let Some(kind) = scaled {
            return Err(format!(
                "scales its rotary embeddings (`{kind}`), which this engine does not do yet"
            ));
        }
        if self.hidden_act != "silu" {
            return Err(format!(
                "uses the activation `{}`; these models use `silu`",
                self.hidden_act
            ));
        }
        if self.mlp_bias || self.use_sliding_window {
            return Err(
                "uses MLP biases or sliding-window attention, which this engine does not run"
                    .into(),
            );
        }
        Ok(())
    }
}
