//! The ToddlerStories engine.
//!
//! Loads diffusers-format models and runs them on burn. The backend is chosen at run time by the
//! [`burn::tensor::Device`] passed in: WebGPU (or Vulkan/Metal natively) through burn-wgpu, or
//! burn's pure-Rust CPU backend where no GPU is available.
//!
//! The folders, in the direction dependencies flow (each uses only those before it):
//! `loaders` (model files, checked) ← `models` (components as burn modules) and `schedulers`
//! (plain math) ← `pipelines` (the numbered recipes) ← `training` (avatars) ← `web` (the browser
//! worker) and `bin/` (the CLI). `faces` (the likeness score) and `photos` stand beside the
//! models; `device`, `error` and `runtime` are used by all.
//!
//! Architecture invariant: the engine never touches the DOM. In the browser it runs in its own
//! Web Worker (`web`), reading model files from the URLs and the on-device store the app names.

pub mod device;
pub mod error;
pub mod estimate;
pub mod faces;
pub mod loaders;
pub mod models;
pub mod photos;
pub mod pipelines;
pub mod runtime;
pub mod sampling;
pub mod schedulers;
pub mod training;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use error::{EngineError, Result};
