//! Attention's scores made slice by slice: `softmax(q·kᵀ)` in f32, the slice size that keeps
//! each score tensor within a WebGPU binding, and attention computed that way. Shared by the
//! forward paths (`attention`) and training's backward pass (`attention_training`).

use burn::tensor::activation::softmax;
use burn::tensor::{Bool, DType, Tensor};

use crate::device::upcast;

/// Attention over `[batch, heads, tokens, head_dim]` with the scores materialised one slice of
/// queries at a time (at most [`MAX_SLICE_SCORES`] each), softmax in f32.
pub fn sliced(query: Tensor<4>, key: Tensor<4>, value: Tensor<4>) -> Tensor<4> {
    let [batch, heads, queries, head_dim] = query.dims();
    let keys = key.dims()[2];
    let query = upcast(query * (head_dim as f64).powf(-0.5));
    let key_t = upcast(key.swap_dims(2, 3));
    let slice = query_slice(batch, heads, queries, keys);
    let outputs: Vec<Tensor<4>> = (0..queries)
        .step_by(slice)
        .map(|start| {
            let length = slice.min(queries - start);
            let query = query.clone().narrow(2, start, length);
            attention_weights(query, key_t.clone(), None, value.dtype()).matmul(value.clone())
        })
        .collect();
    if outputs.len() == 1 {
        outputs.into_iter().next().unwrap()
    } else {
        Tensor::cat(outputs, 2)
    }
}

/// `softmax(q·kᵀ)` from queries and keys already in f32 ([`upcast`]), in the values' type
/// `dtype`. In f16 the scores of SD 2.x's attention overflow (diffusers' `upcast_attention`) and
/// softmax loses its small weights, so both always run in f32; `mask` is true where a query
/// must not look.
pub fn attention_weights(
    query: Tensor<4>,
    key_t: Tensor<4>,
    mask: Option<&Tensor<4, Bool>>,
    dtype: DType,
) -> Tensor<4> {
    let scores = query.matmul(key_t);
    let scores = match mask {
        Some(mask) => scores.mask_fill(mask.clone(), f32::NEG_INFINITY),
        None => scores,
    };
    softmax(scores, 3).cast(dtype)
}

/// Score elements in one slice's `[batch, heads, slice, keys]` tensor, at most: 32 MiB in f32,
/// a quarter of WebGPU's default 128 MiB storage-binding limit.
pub const MAX_SLICE_SCORES: usize = 1 << 23;

/// How many queries one slice takes so its scores stay within [`MAX_SLICE_SCORES`].
pub fn query_slice(batch: usize, heads: usize, queries: usize, keys: usize) -> usize {
    (MAX_SLICE_SCORES / (batch * heads * keys).max(1)).clamp(1, queries)
}
