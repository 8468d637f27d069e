//! burn's flash attention on the GPU against the engine's sliced attention, which the parity
//! suites hold to diffusers.

use burn::tensor::{Device, Distribution, Tensor};
use engine::models::attention::{flash_on_the_gpu, scaled_dot_product, sliced};

use super::{max_abs_diff, values};

/// Flash runs (no silent fallback to the slices) and matches them within `tolerance` (max
/// difference relative to the largest output), over the shapes the engine gives it: SD 2.x's
/// heads of 64 and SD 1.x's 40, self- and cross-attention (77 prompt tokens), token counts that
/// no tile divides, guidance's batch of two, and sharp scores (queries and keys of scale 4).
pub fn assert_flash_matches_slices(device: &Device, tolerance: f32) {
    for (batch, heads, head_dim, queries, keys) in [
        (2, 5, 64, 300, 300),
        (2, 5, 64, 300, 77),
        (1, 8, 40, 257, 257),
    ] {
        let random = |tokens: usize, scale: f64| {
            Tensor::<4>::random(
                [batch, heads, tokens, head_dim],
                Distribution::Normal(0.0, scale),
                device,
            )
        };
        let (query, key, value) = (random(queries, 4.0), random(keys, 4.0), random(keys, 1.0));
        let flash = flash_on_the_gpu(&query, &key, &value).unwrap_or_else(|| {
            panic!("flash attention runs on {device:?} for {heads} heads of {head_dim}")
        });
        let slices = sliced(query.clone(), key.clone(), value.clone());
        let difference = max_relative_difference(&slices, &flash);
        assert!(
            difference <= tolerance,
            "{batch}×{heads} heads of {head_dim}, {queries}×{keys}: flash differs by {difference:e}"
        );
        // And the engine's attention takes it: the same output as flash, bit for bit.
        let engine = scaled_dot_product(
            merge_heads(query),
            merge_heads(key),
            merge_heads(value),
            heads,
        );
        assert_eq!(max_relative_difference(&merge_heads(flash), &engine), 0.0);
    }
}

fn merge_heads(tensor: Tensor<4>) -> Tensor<3> {
    let [batch, heads, tokens, head_dim] = tensor.dims();
    tensor
        .swap_dims(1, 2)
        .reshape([batch, tokens, heads * head_dim])
}

fn max_relative_difference<const D: usize>(reference: &Tensor<D>, other: &Tensor<D>) -> f32 {
    let (reference, other) = (values(reference.clone()), values(other.clone()));
    let scale = reference
        .1
        .iter()
        .fold(0.0f32, |largest, value| largest.max(value.abs()));
    max_abs_diff(&other, &reference) / scale
}
