//! Products with block-quantised matrices: each weight row is widened to f32 as it is used and
//! dotted with the inputs, so a Q4_1 SmolLM2-135M holds 98 MB of weights instead of 540 MB, and
//! reading a token reads that much memory once rather than five times as much.

use std::sync::Arc;

use crate::{TensorType, dequantize};

/// A `[rows, columns]` weight (PyTorch's layout: one row per output) in GGUF blocks.
#[derive(Clone)]
pub struct BlockMatrix {
    kind: TensorType,
    rows: usize,
    columns: usize,
    row_bytes: usize,
    blocks: Arc<Vec<u8>>,
}

impl std::fmt::Debug for BlockMatrix {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "BlockMatrix({} {}×{})",
            self.kind.name(),
            self.rows,
            self.columns
        )
    }
}

/// Output rows computed together (and, natively, per thread).
const ROWS_PER_TASK: usize = 64;

impl BlockMatrix {
    /// `blocks` hold `rows` rows of `columns` values, each row whole blocks of `kind`.
    pub fn new(kind: TensorType, rows: usize, columns: usize, blocks: Vec<u8>) -> Self {
        let (elements, bytes) = kind.block();
        let row_bytes = columns / elements as usize * bytes as usize;
        assert_eq!(blocks.len(), rows * row_bytes, "whole rows of whole blocks");
        BlockMatrix {
            kind,
            rows,
            columns,
            row_bytes,
            blocks: Arc::new(blocks),
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn columns(&self) -> usize {
        self.columns
    }

    pub fn bytes(&self) -> usize {
        self.blocks.len()
    }

    /// Row `row` widened to f32, appended to `out`.
    pub fn row_into(&self, row: usize, out: &mut Vec<f32>) {
        let start = row * self.row_bytes;
        dequantize(self.kind, &self.blocks[start..start + self.row_bytes], out);
    }

    /// The whole matrix widened to f32, row after row (for products with many inputs at once,
    /// where a dense matrix product is faster than widening each row per input block).
    pub fn dense(&self) -> Vec<f32> {
        let chunks = self.blocks.chunks(self.row_bytes * ROWS_PER_TASK);
        let widen = |blocks: &[u8]| {
            let mut values = Vec::with_capacity(blocks.len() / self.row_bytes * self.columns);
            dequantize(self.kind, blocks, &mut values);
            values
        };
        #[cfg(not(target_arch = "wasm32"))]
        let parts: Vec<Vec<f32>> = {
            use rayon::prelude::*;
            chunks
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(widen)
                .collect()
        };
        #[cfg(target_arch = "wasm32")]
        let parts: Vec<Vec<f32>> = chunks.map(widen).collect();
        parts.concat()
    }

    /// `[count, columns]` inputs times the transposed weight: `[count, rows]`.
    pub fn products(&self, inputs: &[f32], count: usize) -> Vec<f32> {
        let tasks = self.rows.div_ceil(ROWS_PER_TASK);
        // Each task fills its rows for every input: [rows of the task][count].
        let task = |index: usize| -> Vec<f32> {
            let rows = index * ROWS_PER_TASK..((index + 1) * ROWS_PER_TASK).min(self.rows);
            let mut weights = Vec::with_capacity(self.columns);
            let mut out = Vec::with_capacity(rows.len() * count);
            for row in rows {
                weights.clear();
                self.row_into(row, &mut weights);
                out.extend(
                    inputs
                        .chunks_exact(self.columns)
                        .map(|input| dot(&weights, input)),
                );
            }
            out
        };
        #[cfg(not(target_arch = "wasm32"))]
        let parts: Vec<Vec<f32>> = {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().map(task).collect()
        };
        #[cfg(target_arch = "wasm32")]
        let parts: Vec<Vec<f32>> = (0..tasks).map(task).collect();
        let mut products = vec![0.0; count * self.rows];
        for (index, part) in parts.iter().enumerate() {
            let first_row = index * ROWS_PER_TASK;
            for (offset, row_values) in part.chunks_exact(count).enumerate() {
                for (input, value) in row_values.iter().enumerate() {
                    products[input * self.rows + first_row + offset] = *value;
                }
            }
        }
        products
    }
}

/// A dot product in eight lanes, which the compiler turns into SIMD (a plain sum it may not
/// reorder).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn products_match_the_dequantised_matrix() {
        // Two Q8_0 rows of 64 values, three inputs.
        let mut blocks = Vec::new();
        for block in 0..4 {
            blocks.extend(f16::from_f32(0.25 * (block + 1) as f32).to_le_bytes());
            blocks.extend((0..32).map(|i| ((i * 7 + block * 3) % 255) as u8));
        }
        let matrix = BlockMatrix::new(TensorType::Q8_0, 2, 64, blocks.clone());
        let mut dense = Vec::new();
        dequantize(TensorType::Q8_0, &blocks, &mut dense);
        let inputs: Vec<f32> = (0..3 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
        let products = matrix.products(&inputs, 3);
        for input in 0..3 {
            for row in 0..2 {
                let expected: f32 = (0..64)
                    .map(|column| dense[row * 64 + column] * inputs[input * 64 + column])
                    .sum();
                let got = products[input * 2 + row];
                assert!((got - expected).abs() < 1e-3, "{got} vs {expected}");
            }
        }
    }
}
