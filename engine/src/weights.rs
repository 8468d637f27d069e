//! The one loader: a component's safetensors (f32, f16 or bf16; single file or sharded; diffusers
//! variant names) into a burn module whose parameter paths are the checkpoint keys.
//!
//! Every tensor the module expects must be found with the right shape, and every tensor in the
//! files must be used; anything else is an error naming the file and the tensor.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::Module;
use burn::tensor::DType;
use burn_store::{
    ApplyError, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use serde::Deserialize;

use crate::error::{EngineError, Result};
use crate::files::{ModelFiles, parse_json};

/// Checkpoint buffers that the math does not need (transformers derives position ids itself).
const IGNORED_TENSORS: [&str; 1] = ["embeddings.position_ids"];

/// The diffusers variants tried, in order, when no variant is asked for and no plain file exists.
const HALF_VARIANTS: [&str; 2] = ["fp16", "bf16"];

/// The weight files of one component, resolved from what the folder holds.
#[derive(Debug, PartialEq)]
pub struct WeightFiles {
    /// Relative paths, in shard order.
    pub files: Vec<String>,
}

impl WeightFiles {
    /// Looks in `component/` for `{stem}[.{variant}].safetensors` or its sharded index.
    /// With a variant, the plain files are the fallback (as diffusers falls back); without one,
    /// the plain files come first and the half-precision variants after them, so a folder that
    /// holds only `*.fp16.safetensors` (the smaller download) still loads.
    pub fn find(
        files: &impl ModelFiles,
        component: &str,
        stem: &str,
        variant: Option<&str>,
    ) -> Result<Self> {
        let mut names = Vec::new();
        if let Some(variant) = variant {
            names.push(format!("{component}/{stem}.{variant}.safetensors"));
        }
        names.push(format!("{component}/{stem}.safetensors"));
        if variant.is_none() {
            names.extend(
                HALF_VARIANTS
                    .iter()
                    .map(|half| format!("{component}/{stem}.{half}.safetensors")),
            );
        }
        for name in &names {
            let index = format!("{name}.index.json");
            if let Some(bytes) = files.read(&index)? {
                #[derive(Deserialize)]
                struct ShardIndex {
                    weight_map: BTreeMap<String, String>,
                }
                let parsed: ShardIndex = parse_json(
                    &bytes,
                    &files.display_path(&index),
                    "a sharded-weights index",
                )?;
                let shards: BTreeSet<String> = parsed.weight_map.into_values().collect();
                return Ok(WeightFiles {
                    files: shards
                        .into_iter()
                        .map(|shard| format!("{component}/{shard}"))
                        .collect(),
                });
            }
            if files.read(name)?.is_some() {
                return Ok(WeightFiles {
                    files: vec![name.clone()],
                });
            }
        }
        Err(EngineError::MissingFile {
            path: files.display_path(&names[usize::from(variant.is_some())]),
            what: "the component's weights (safetensors)",
        })
    }
}

/// Loads `weights` into `module`, converting every float tensor to `dtype`. `remaps` are
/// (regex, replacement) pairs from checkpoint keys to module paths, for the few places where
/// diffusers' layout is not a plain field path (a `text_model.` prefix, list-valued layers).
pub fn load_into<M: Module + ModuleSnapshot>(
    mut module: M,
    files: &impl ModelFiles,
    weights: &WeightFiles,
    remaps: &[(&str, &str)],
    dtype: DType,
) -> Result<M> {
    let mut expected: Option<BTreeSet<String>> = None;
    let mut applied = BTreeSet::new();
    for file in &weights.files {
        let path = files.display_path(file);
        let bytes = files.require(file, "a weights shard listed in the index")?;
        let mut store = SafetensorsStore::from_bytes(Some(bytes))
            .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(dtype)))
            .allow_partial(true)
            // `proj_in` is a linear layer or a convolution: an enum whose variant is not in the key.
            .skip_enum_variants(true)
            .validate(false);
        for (pattern, replacement) in remaps {
            store = store.with_key_remapping(*pattern, *replacement);
        }
        let result = module
            .load_from(&mut store)
            .map_err(|error| EngineError::Weights {
                path: path.clone(),
                problem: error.to_string(),
            })?;
        if let Some(error) = result.errors.first() {
            return Err(tensor_error(&path, error));
        }
        if let Some(unused) = result
            .unused
            .iter()
            .find(|key| !IGNORED_TENSORS.contains(&key.as_str()))
        {
            return Err(EngineError::Tensor {
                path,
                tensor: unused.clone(),
                problem: "is not part of this model (does config.json match the weights?)".into(),
            });
        }
        let all: BTreeSet<String> = result
            .applied
            .iter()
            .cloned()
            .chain(result.missing.iter().map(|(key, _)| key.clone()))
            .collect();
        expected.get_or_insert(all);
        applied.extend(result.applied);
    }
    let expected = expected.unwrap_or_default();
    if let Some(missing) = expected.difference(&applied).next() {
        return Err(EngineError::Tensor {
            path: files.display_path(&weights.files[0]),
            tensor: missing.clone(),
            problem: "is missing from the weights".into(),
        });
    }
    Ok(module)
}

fn tensor_error(path: &std::path::Path, error: &ApplyError) -> EngineError {
    let (tensor, problem) = match error {
        ApplyError::ShapeMismatch {
            path,
            expected,
            found,
        } => (
            path,
            format!(
                "has shape {:?} but this model needs {:?}",
                found.as_slice(),
                expected.as_slice()
            ),
        ),
        ApplyError::DTypeMismatch {
            path,
            expected,
            found,
        } => (
            path,
            format!("has unsupported type {found:?} (expected a float type such as {expected:?})"),
        ),
        ApplyError::AdapterError { path, message } | ApplyError::LoadError { path, message } => {
            (path, message.clone())
        }
    };
    EngineError::Tensor {
        path: path.to_owned(),
        tensor: tensor.clone(),
        problem,
    }
}

/// The values of a little-endian f32, f16 or bf16 tensor as f32; `None` for any other type.
pub fn float_values(dtype: safetensors::Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    use safetensors::Dtype;
    let words = |size: usize| bytes.chunks_exact(size);
    Some(match dtype {
        Dtype::F32 => words(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => words(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => words(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}
