//! Learning an avatar on the device: textual inversion of the child's token (`avatar`) and,
//! for the "stronger likeness", a LoRA on the UNet trained with it (`lora`, pivotal tuning).
//!
//! Architecture invariant: training builds on the pipelines and models and nothing below it
//! depends on training; the worker and the CLI drive it.

pub mod avatar;
pub mod lora;
