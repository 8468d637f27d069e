//! The two kinds of file a parent imports from anywhere: a textual-inversion embedding and a LoRA.
#![no_main]

use engine::loaders::lora::LoraFile;
use engine::loaders::textual_inversion::TextualInversion;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = TextualInversion::from_safetensors(data, Path::new("avatar.safetensors"));
    let _ = LoraFile::from_safetensors(data, Path::new("style.safetensors"));
});
