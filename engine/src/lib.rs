//! The ToddlerStories diffusion engine.
//!
//! Loads diffusers-format models and runs them on burn. The backend is chosen at run time by the
//! [`burn::tensor::Device`] passed in: WebGPU (or Vulkan/Metal natively) through burn-wgpu, or
//! burn's pure-Rust CPU backend where no GPU is available.
//!
//! Architecture invariant: the engine never touches the DOM. In the browser it runs in its own
//! Web Worker (`web`), reading model files from the URLs and the on-device store the app names.

pub mod attention;
pub mod autoencoder_tiny;
pub mod avatar;
pub mod clip;
pub mod conv;
pub mod device;
pub mod embeddings;
pub mod error;
pub mod faces;
pub mod files;
pub mod limits;
pub mod lora;
pub mod photos;
pub mod pipeline;
pub mod prompt;
pub mod resnet;
pub mod runtime;
pub mod schedulers;
pub mod textual_inversion;
pub mod tokenizer;
pub mod unet_2d;
pub mod vae;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use error::{EngineError, Result};
