//! A GGUF file as the story writer meets it: the header parsed and checked, the model's shape
//! and tokenizer read from its metadata, and every tensor whose bytes the input holds
//! dequantised.
#![no_main]

use engine::loaders::files::Checked;
use engine::loaders::gguf::{Gguf, dequantize};
use engine::models::llama::{LanguageTokenizer, LlamaConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = Gguf::parse(data, data.len() as u64) else {
        return;
    };
    if let Ok(config) = LlamaConfig::from_gguf(&gguf, gguf.tensor("output.weight").is_some()) {
        let _ = config.check();
    }
    if let Ok(tokenizer) = LanguageTokenizer::from_gguf(&gguf, std::path::Path::new("fuzz.gguf")) {
        let _ = tokenizer.encode("Once upon a time <|im_end|> 🦆");
    }
    let mut values = Vec::new();
    for tensor in &gguf.tensors {
        values.clear();
        let bytes = &data[tensor.range.start as usize..tensor.range.end as usize];
        dequantize(tensor.kind, bytes, &mut values);
        assert_eq!(values.len(), tensor.elements());
    }
});
