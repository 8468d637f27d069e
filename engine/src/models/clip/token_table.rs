//! CLIP's token table, held in the page's own memory in the type it was stored in, its rows
//! gathered there.
//!
//! The token ids of a prompt are known before the text encoder runs, so the 77 rows it needs are
//! picked here and only they go to the device. SD-Turbo's table (49,408 × 1,024) is 202 MB in f32:
//! more than the 128 MiB a WebGPU storage binding is guaranteed, and dead weight on a GPU that
//! only ever reads 77 of its rows. Held as stored (f16 in the hub's files), it is 101 MB of host
//! memory on every path.

use std::sync::Arc;

use half::{bf16, f16};

/// The rows, as stored. Shared between the copies of a model (LoRA-adapted encoders).
#[derive(Clone)]
enum Rows {
    F32(Arc<Vec<f32>>),
    F16(Arc<Vec<f16>>),
    Bf16(Arc<Vec<bf16>>),
}

/// A `[rows, width]` token table.
#[derive(Clone)]
pub struct TokenTable {
    width: usize,
    rows: Rows,
    /// Rows added after loading (textual-inversion tokens), in f32 as their files give them:
    /// rounding them to the table's half precision would change the prompt's encoding.
    added: Arc<Vec<f32>>,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "TokenTable[{} × {}]", self.rows(), self.width)
    }
}

impl TokenTable {
    /// A table with no rows yet (before the weights are read).
    pub fn empty(width: usize) -> Self {
        TokenTable {
            width,
            rows: Rows::F32(Arc::new(Vec::new())),
            added: Arc::new(Vec::new()),
        }
    }

    /// The table from a safetensors tensor's little-endian bytes; `None` for a type other than
    /// f32, f16 or bf16 or bytes that do not make `[rows, width]`.
    pub fn from_bytes(
        dtype: safetensors::Dtype,
        shape: &[usize],
        bytes: &[u8],
    ) -> Option<TokenTable> {
        let &[rows, width] = shape else {
            return None;
        };
        let words = |size: usize| {
            (bytes.len() == rows.checked_mul(width)?.checked_mul(size)?)
                .then(|| bytes.chunks_exact(size))
        };
        let rows = match dtype {
            safetensors::Dtype::F32 => Rows::F32(Arc::new(
                words(4)?
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )),
            safetensors::Dtype::F16 => Rows::F16(Arc::new(
                words(2)?
                    .map(|b| f16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            )),
            safetensors::Dtype::BF16 => Rows::Bf16(Arc::new(
                words(2)?
                    .map(|b| bf16::from_le_bytes([b[0], b[1]]))
                    .collect(),
            )),
            _ => return None,
        };
        Some(TokenTable {
            width,
            rows,
            added: Arc::new(Vec::new()),
        })
    }

    pub fn rows(&self) -> usize {
        (self.stored_values() + self.added.len()) / self.width.max(1)
    }

    fn stored_values(&self) -> usize {
        match &self.rows {
            Rows::F32(values) => values.len(),
            Rows::F16(values) => values.len(),
            Rows::Bf16(values) => values.len(),
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let stored = match &self.rows {
            Rows::F32(values) => values.len() * 4,
            Rows::F16(values) => values.len() * 2,
            Rows::Bf16(values) => values.len() * 2,
        };
        stored + self.added.len() * 4
    }

    /// Appends `values` (whole rows) after the table's rows.
    pub fn append(&mut self, values: &[f32]) {
        debug_assert!(values.len().is_multiple_of(self.width.max(1)));
        Arc::make_mut(&mut self.added).extend_from_slice(values);
    }

    /// The rows of `ids` as f32, one after another; an id past the table gives a row of zeros
    /// (the caller puts the avatar's own rows there).
    pub fn gather(&self, ids: &[u32]) -> Vec<f32> {
        let width = self.width;
        let stored = self.stored_values() / width.max(1);
        let mut gathered = vec![0.0; ids.len() * width];
        for (out, &id) in gathered.chunks_exact_mut(width).zip(ids) {
            let id = id as usize;
            if id >= stored {
                let start = (id - stored) * width;
                if let Some(row) = self.added.get(start..start + width) {
                    out.copy_from_slice(row);
                }
                continue;
            }
            let range = id * width..(id + 1) * width;
            match &self.rows {
                Rows::F32(values) => out.copy_from_slice(&values[range]),
                Rows::F16(values) => {
                    for (out, value) in out.iter_mut().zip(&values[range]) {
                        *out = value.to_f32();
                    }
                }
                Rows::Bf16(values) => {
                    for (out, value) in out.iter_mut().zip(&values[range]) {
                        *out = value.to_f32();
                    }
                }
            }
        }
        gathered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_gathered_in_order_and_ids_past_the_table_give_zeros() {
        let values: Vec<f32> = (0..6).map(|v| v as f32 + 0.5).collect();
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        let mut table = TokenTable::from_bytes(safetensors::Dtype::F16, &[3, 2], &bytes).unwrap();
        assert_eq!((table.rows(), table.width(), table.bytes()), (3, 2, 12));
        assert_eq!(table.gather(&[2, 0, 7]), vec![4.5, 5.5, 0.5, 1.5, 0.0, 0.0]);
        table.append(&[9.0, 10.0]);
        assert_eq!(table.rows(), 4);
        // Added rows keep f32's precision.
        table.append(&[0.1, 0.2]);
        assert_eq!(
            table.gather(&[3, 4, 1]),
            vec![9.0, 10.0, 0.1, 0.2, 2.5, 3.5]
        );
        assert_eq!(table.gather(&[5]), vec![0.0, 0.0]);
    }

    #[test]
    fn bytes_that_do_not_make_the_shape_are_refused() {
        assert!(TokenTable::from_bytes(safetensors::Dtype::F32, &[3, 2], &[0; 20]).is_none());
        assert!(TokenTable::from_bytes(safetensors::Dtype::F32, &[6], &[0; 24]).is_none());
        assert!(TokenTable::from_bytes(safetensors::Dtype::I32, &[3, 2], &[0; 24]).is_none());
        assert!(
            TokenTable::from_bytes(safetensors::Dtype::F32, &[usize::MAX, 2], &[0; 24]).is_none()
        );
    }
}
