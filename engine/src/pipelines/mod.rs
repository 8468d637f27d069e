//! Pipelines: numbered recipes that run model components end to end. `stable_diffusion` draws a
//! picture (prompt → latents → denoising loop → RGB); `prompt` encodes prompts with an avatar's
//! vectors and LoRAs; `text_generation` continues a prompt with a language model, token by token;
//! `story_writer` writes a picture book's pages from a parent's idea with it, piece by piece.
//!
//! Architecture invariant: the sampling loop lives here, never in a model component; pipelines
//! depend on models, loaders and schedulers, and nothing below them depends on a pipeline.

pub mod prompt;
pub mod stable_diffusion;
pub mod story_writer;
pub mod text_generation;
