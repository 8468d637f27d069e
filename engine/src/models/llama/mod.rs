//! The story writer's language models: transformers' `LlamaForCausalLM` (SmolLM2) and
//! `Qwen2ForCausalLM` (Qwen2.5), which differ only in the attention's biases — rotary position
//! embeddings, RMSNorm, a SwiGLU MLP and grouped-query attention, with tied or separate output
//! embeddings, all configured from the model's own files.
//!
//! `config` reads transformers' `config.json` or a GGUF's metadata into one [`LlamaConfig`];
//! `model` is the module, whose parameter paths are transformers' checkpoint keys; `gguf` maps
//! llama.cpp's tensor names and layouts onto them, keeping quantised blocks as they are on the
//! processor (`quantized`); `tokenizer` builds the tokenizer from
//! `tokenizer.json` or from the GGUF's vocabulary and merges; `chat` renders the model's own chat
//! template.

pub mod chat;
pub mod config;
pub mod gguf;
pub mod model;
pub mod quantized;
pub mod tokenizer;

pub use chat::{ChatTemplate, Message};
pub use config::{Family, LlamaConfig};
pub use model::{KvCache, LlamaForCausalLM};
pub use tokenizer::LanguageTokenizer;
