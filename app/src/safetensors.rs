//! A glance at a safetensors file's header in the app, before the engine reads it properly: is
//! it an avatar's embedding, is it a LoRA, what rank.

/// The header's JSON (tensor entries and `__metadata__`), when `bytes` starts like safetensors.
pub fn header(bytes: &[u8]) -> Option<serde_json::Map<String, serde_json::Value>> {
    let length = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    serde_json::from_slice(bytes.get(8..8usize.checked_add(length)?)?).ok()
}

/// Whether `bytes` is a safetensors file whose tensors are LoRA factors (the engine checks the
/// rest when it loads it, against the model).
pub fn looks_like_lora(bytes: &[u8]) -> bool {
    header(bytes).is_some_and(|header| {
        header.keys().any(|key| {
            key.contains("lora_A") || key.contains("lora_down") || key.contains(".lora.")
        })
    })
}

/// The rank a LoRA file states in its metadata (this engine writes it), else the stronger
/// likeness's.
pub fn lora_rank(bytes: &[u8]) -> usize {
    header(bytes)
        .and_then(|header| {
            header
                .get("__metadata__")?
                .get("rank")?
                .as_str()?
                .parse()
                .ok()
        })
        .unwrap_or(protocol::STRONGER_LIKENESS_RANK)
}
