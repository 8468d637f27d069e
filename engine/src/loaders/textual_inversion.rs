//! Textual-inversion embeddings (an avatar is one): reading the file formats in use.
//!
//! - diffusers `learned_embeds.safetensors`: one tensor, named by its token, `[n, dim]` (or `[dim]`);
//! - A1111 safetensors: one tensor `emb_params`; as in A1111, the file name is the token.
//!
//! A1111's `.pt` files (`string_to_param`) are Python pickles, which can run code when read; they
//! are recognised and refused with an explanation rather than parsed.
//!
//! Adding them to a tokenizer and text encoder follows diffusers' `load_textual_inversion`; see
//! `prompt.rs`.

use std::path::Path;

use safetensors::SafeTensors;

use crate::error::{EngineError, Result};
use crate::loaders::limits::{MAX_CHANNELS, MAX_EMBEDDING_VECTORS};
use crate::loaders::weights::float_values;

/// One learned token and its vectors.
#[derive(Clone, Debug, PartialEq)]
pub struct TextualInversion {
    /// The placeholder as written in prompts, e.g. `<mia>`.
    pub token: String,
    /// `vectors.len()` rows of `dim` values each.
    pub vectors: Vec<Vec<f32>>,
}

impl TextualInversion {
    pub fn dim(&self) -> usize {
        self.vectors.first().map_or(0, Vec::len)
    }

    /// The tokens this embedding adds: `<t>`, `<t>_1`, `<t>_2`, … (diffusers' naming).
    pub fn tokens(&self) -> Vec<String> {
        (0..self.vectors.len())
            .map(|index| {
                if index == 0 {
                    self.token.clone()
                } else {
                    format!("{}_{index}", self.token)
                }
            })
            .collect()
    }

    /// Reads an embedding file. `path` names it in errors and, for A1111 files, gives the token.
    pub fn from_safetensors(bytes: &[u8], path: &Path) -> Result<Self> {
        let error = |problem: String| EngineError::Embedding {
            path: path.to_owned(),
            problem,
        };
        // A zip archive or a bare pickle: PyTorch's `torch.save` format (A1111 `.pt` embeddings).
        if bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80) {
            return Err(error(
                "is a PyTorch .pt file; unpickling it could run code, so only safetensors embeddings are read \
                 (convert it with a safetensors converter, or train the avatar in the app)"
                    .into(),
            ));
        }
        // The reader's own words ("invalid header deserialization") mean nothing to a parent.
        let tensors = SafeTensors::deserialize(bytes).map_err(|_| {
            error(
                "is not an embedding file: it is cut short, damaged, or another kind of file"
                    .into(),
            )
        })?;
        let names = tensors.names();
        let name = match names.as_slice() {
            [name] => name.to_string(),
            [] => return Err(error("holds no tensors, so it is not an embedding".into())),
            _ => {
                let mut sorted: Vec<&str> = names.iter().map(|name| name.as_ref()).collect();
                sorted.sort();
                return Err(error(format!(
                    "holds {} tensors ({}); an embedding file holds exactly one",
                    sorted.len(),
                    sorted.join(", ")
                )));
            }
        };
        let tensor = tensors.tensor(&name).expect("the name was listed");
        let (rows, dim) = match tensor.shape() {
            [dim] => (1, *dim),
            [rows, dim] => (*rows, *dim),
            shape => {
                return Err(error(format!(
                    "tensor `{name}` has shape {shape:?}; expected [vectors, dim]"
                )));
            }
        };
        if rows == 0 || dim == 0 {
            return Err(error(format!("tensor `{name}` is empty")));
        }
        let most_vectors = MAX_EMBEDDING_VECTORS;
        if rows > most_vectors || dim > MAX_CHANNELS {
            return Err(error(format!(
                "tensor `{name}` has {rows} vectors of {dim} numbers; an embedding has at most \
                 {most_vectors} vectors of at most {} numbers",
                MAX_CHANNELS
            )));
        }
        let values = float_values(tensor.dtype(), tensor.data()).ok_or_else(|| {
            error(format!(
                "tensor `{name}` has type {:?}; expected F32, F16 or BF16",
                tensor.dtype()
            ))
        })?;
        if let Some(bad) = values.iter().find(|value| !value.is_finite()) {
            return Err(error(format!(
                "holds {bad} where its numbers should be, so no picture can be drawn from it (a damaged or badly trained embedding)"
            )));
        }
        let token = if name == "emb_params" {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or(name)
        } else {
            name
        };
        if token.is_empty() || token.chars().count() > 100 || token.chars().any(char::is_whitespace)
        {
            return Err(error(format!(
                "names its token {token:?}; a token is one word of at most 100 characters"
            )));
        }
        Ok(TextualInversion {
            token,
            vectors: values.chunks(dim).map(<[f32]>::to_vec).collect(),
        })
    }
}
