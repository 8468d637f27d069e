//! Reading model files, each checked before anything is built from it: access to a diffusers
//! folder (`files`), the bounds every config must keep (`limits`), the one safetensors loader
//! (`weights`), and the files people add to a model — textual-inversion embeddings and LoRA
//! files — and llama.cpp's GGUF files for the story writer's language models (`gguf`).
//!
//! Architecture invariant: loaders depend on nothing in the engine but `error`;
//! model components, pipelines, training and the worker depend on them.

pub mod files;
/// The GGUF reader lives in its own crate (built optimised even in debug builds: the language
/// model's products with quantised weights run in it); the engine reads it from here.
pub use gguf;
pub mod limits;
pub mod lora;
pub mod textual_inversion;
pub mod weights;
