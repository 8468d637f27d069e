//! Bounds on what a model's configuration may ask for, checked before any tensor exists.
//!
//! A config is only a promise about its weights; a hostile one can ask for 10^9 channels or a
//! 10^12-row vocabulary. Every count is checked against these bounds (generous: several times
//! the largest Stable Diffusion model) so a bad file is a clear error rather than an allocation
//! the device cannot make. The weights must then match the config tensor by tensor, so what a
//! model holds in memory is bounded by what its files hold.

/// Feature channels of any block or layer (SDXL's widest is 1280; CLIP ViT-bigG's 1280).
pub const MAX_CHANNELS: usize = 16_384;
/// A tokenizer's vocabulary or an embedding table (CLIP's is 49,408).
pub const MAX_VOCABULARY: usize = 1 << 20;
/// Layers in one block, blocks in a UNet, transformer layers in a text encoder.
pub const MAX_LAYERS: usize = 128;
/// Positions a text encoder can read (CLIP's 77).
pub const MAX_POSITIONS: usize = 4096;
/// Channels of a latent or a picture.
pub const MAX_IMAGE_CHANNELS: usize = 64;
/// A scheduler's training timesteps (Stable Diffusion's 1000).
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;
/// A picture's side in pixels: 2048 (a 4-megapixel page) is four times SD's 512.
pub const MAX_PICTURE_SIDE: usize = 2048;
/// Inference steps of one picture.
pub const MAX_STEPS: usize = 1000;
/// Vectors of one textual-inversion embedding: a CLIP prompt's 77 tokens less its start and end
/// marks (`models::clip::MAX_LENGTH − 2`).
pub const MAX_EMBEDDING_VECTORS: usize = 75;

/// `Err` naming `field` unless `min ≤ value ≤ max`.
pub fn count(field: &str, value: usize, min: usize, max: usize) -> Result<(), String> {
    if value < min || value > max {
        Err(format!(
            "{field} is {value}, but it must be from {min} to {max}"
        ))
    } else {
        Ok(())
    }
}

/// [`count`] for every entry of a list, which must not be empty (nor longer than `MAX_LAYERS`).
pub fn counts(field: &str, values: &[usize], min: usize, max: usize) -> Result<(), String> {
    count(
        &format!("the length of {field}"),
        values.len(),
        1,
        MAX_LAYERS,
    )?;
    values
        .iter()
        .try_for_each(|&value| count(&format!("an entry of {field}"), value, min, max))
}

/// `Err` naming `field` unless `value` is finite and positive.
pub fn positive(field: &str, value: f64) -> Result<(), String> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(format!(
            "{field} is {value}, but it must be a positive number"
        ))
    }
}
