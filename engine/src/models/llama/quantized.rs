//! Weights kept as their GGUF blocks (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) on the processor
//! ([`QuantizedMatrix`], in the `gguf` crate), and the layer that multiplies by them.
//!
//! The processor only: burn's CPU backend keeps its tensors in this process's memory, so the
//! inputs are read here, multiplied, and handed back. A GPU holds dequantised weights in the type
//! it computes in (see `models/llama/gguf.rs`).

use burn::tensor::{Tensor, TensorData};

pub use crate::loaders::gguf::matrix::BlockMatrix as QuantizedMatrix;

/// `x · Wᵀ` for `[batch, tokens, columns]` inputs on the CPU backend: `[batch, tokens, rows]`.
pub fn forward(matrix: &QuantizedMatrix, x: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, columns] = x.dims();
    assert_eq!(columns, matrix.columns(), "the input's width");
    let device = x.device();
    let dtype = x.dtype();
    let inputs = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 values");
    let products = matrix.products(&inputs, batch * tokens);
    Tensor::<3>::from_data(
        TensorData::new(products, [batch, tokens, matrix.rows()]),
        (&device, dtype),
    )
}
