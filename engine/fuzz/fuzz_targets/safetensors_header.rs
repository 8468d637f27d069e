//! A weights file's header, as the loader reads it before any tensor: it must parse, tile the
//! data section and match the file's length, or be an error. Never a panic or a huge allocation.
#![no_main]

use engine::loaders::files::{InMemory, block_on};
use engine::loaders::weights::SafetensorsHeader;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "unet/diffusion_pytorch_model.safetensors";

fuzz_target!(|data: &[u8]| {
    let files = InMemory([(PATH.to_owned(), data.to_vec())].into_iter().collect());
    if let Ok(header) = block_on(SafetensorsHeader::read(&files, PATH)) {
        // What the loader does next: plan its reads, every range inside the file.
        for (_, range) in header.batches(1 << 16) {
            assert!(range.start <= range.end && range.end <= data.len() as u64);
        }
    }
});
