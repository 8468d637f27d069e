//! Weights kept as their GGUF blocks (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K) on the processor
//! ([`QuantizedMatrix`], in the `gguf` crate), and the layer that multiplies by them.
//!
//! The processor only: burn's CPU backend keeps its tensors in this process's memory, so the
//! inputs are read here, multiplied, and handed back. A GPU holds dequantised weights in the type
//! it computes in (see `models/llama/gguf.rs`).

use burn::tensor::{Tensor, TensorData};

pub use crate::loaders::gguf::matrix::BlockMatrix as QuantizedMatrix;

/// Inputs from which the matrix is widened whole and multiplied by burn's matrix product (a
/// prompt read in one batch), rather than row by row (a token at a time). Measured on SmolLM2-135M
/// natively: a 60-token prompt at 135 tokens/s row by row.
const DENSE_FROM_INPUTS: usize = 8;

/// `x · Wᵀ` for `[batch, tokens, columns]` inputs on the CPU backend: `[batch, tokens, rows]`.
pub fn forward(matrix: &QuantizedMatrix, x: Tensor<3>) -> Tensor<3> {
    let [batch, tokens, columns] = x.dims();
    assert_eq!(columns, matrix.columns(), "the input's width");
    let device = x.device();
    let dtype = x.dtype();
    if batch * tokens >= DENSE_FROM_INPUTS {
        let weight = Tensor::<2>::from_data(
            TensorData::new(matrix.dense(), [matrix.rows(), columns]),
            (&device, dtype),
        );
        return x.matmul(weight.transpose().unsqueeze::<3>());
    }
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
