//! Model components as burn modules, named after the diffusers and transformers classes they
//! mirror; a parameter's path is its checkpoint key.
//!
//! The picture model's parts: the building blocks (`conv`, `attention`, `resnet`,
//! `embeddings`), the UNet (`unet_2d`), the autoencoders (`vae`, `autoencoder_tiny`) and the
//! text encoder with its tokenizer (`clip/`). `lora` holds the layers a LoRA can adapt and the
//! low-rank terms on them. A model family with a tokenizer of its own gets a folder, as
//! transformers does: the story writer's language model goes in `llama/` (model and tokenizer),
//! beside `clip/`.
//!
//! Architecture invariant: model components depend only on `loaders` (and `device`, `error`),
//! never on a pipeline, training or the worker; no `Module` contains a sampling loop.

pub mod attention;
pub mod attention_scores;
pub mod attention_training;
pub mod autoencoder_tiny;
pub mod clip;
pub mod conv;
pub mod embeddings;
pub mod held_weights;
pub mod llama;
pub mod lora;
pub mod resnet;
pub mod unet_2d;
pub mod vae;
