//! The one loader: a component's safetensors (f32, f16 or bf16; single file or sharded; diffusers
//! variant names) into a burn module whose parameter paths are the checkpoint keys.
//!
//! Every tensor the module expects must be found with the right shape, and every tensor in the
//! files must be used; anything else is an error naming the file and the tensor.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use burn::module::Module;
use burn::tensor::DType;
use burn_store::{
    ApplyError, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use serde::Deserialize;

use crate::error::{EngineError, Result};
use crate::loaders::files::{ModelFiles, parse_json};

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
    pub async fn find(
        files: &impl ModelFiles,
        component: &str,
        stem: &str,
        variant: Option<&str>,
    ) -> Result<Self> {
        // An empty `component` is the folder itself (a transformers model).
        let folder = match component {
            "" => String::new(),
            component => format!("{component}/"),
        };
        let mut names = Vec::new();
        if let Some(variant) = variant {
            names.push(format!("{folder}{stem}.{variant}.safetensors"));
        }
        names.push(format!("{folder}{stem}.safetensors"));
        if variant.is_none() {
            names.extend(
                HALF_VARIANTS
                    .iter()
                    .map(|half| format!("{folder}{stem}.{half}.safetensors")),
            );
        }
        for name in &names {
            let index = format!("{name}.index.json");
            if let Some(bytes) = files.read(&index).await? {
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
                        .map(|shard| format!("{folder}{shard}"))
                        .collect(),
                });
            }
            if files.size(name).await?.is_some() {
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

/// How many bytes of tensors are read, converted and uploaded at a time. The loader's memory
/// stays a small multiple of this whatever the model's size (issue 5: < 1 GB while loading
/// SD-Turbo's 2.6 GB).
pub const BATCH_BYTES: u64 = 32 << 20;

/// The largest safetensors header accepted (the format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// A safetensors file's header: where each tensor's bytes lie.
#[derive(Debug)]
pub struct SafetensorsHeader {
    /// Byte offset of the data section in the file.
    pub data_start: u64,
    pub metadata: safetensors::tensor::Metadata,
}

impl SafetensorsHeader {
    /// Reads and checks the header of `relative`: it parses, its tensors tile the data section
    /// exactly, and the file is as long as the header says (so a truncated download is caught
    /// before any tensor is used).
    pub async fn read(files: &impl ModelFiles, relative: &str) -> Result<Self> {
        let path = files.display_path(relative);
        let invalid = |problem: String| EngineError::Weights {
            path: path.clone(),
            problem,
        };
        let size = files
            .size(relative)
            .await?
            .ok_or_else(|| EngineError::MissingFile {
                path: path.clone(),
                what: "a weights file",
            })?;
        if size < 8 {
            return Err(invalid(format!("is not a safetensors file ({size} bytes)")));
        }
        let length = files.read_range(relative, 0..8).await?;
        let header_bytes = u64::from_le_bytes(length.try_into().expect("8 bytes"));
        if header_bytes > MAX_HEADER_BYTES || 8 + header_bytes > size {
            return Err(invalid(format!(
                "is not a safetensors file (header length {header_bytes} in a {size}-byte file)"
            )));
        }
        let header = files.read_range(relative, 8..8 + header_bytes).await?;
        let metadata: safetensors::tensor::Metadata = serde_json::from_slice(&header)
            .map_err(|error| invalid(format!("has an invalid safetensors header: {error}")))?;
        let data_start = 8 + header_bytes;
        let expected = data_start + metadata.data_len() as u64;
        if expected != size {
            return Err(invalid(format!(
                "is {size} bytes but its header describes {expected} (an incomplete or damaged download?)"
            )));
        }
        Ok(SafetensorsHeader {
            data_start,
            metadata,
        })
    }

    /// Tensor names in file order, grouped into runs of about `batch_bytes` (a larger tensor is
    /// a run of its own), each with its byte range in the file.
    pub fn batches(&self, batch_bytes: u64) -> Vec<(Vec<String>, Range<u64>)> {
        let mut batches: Vec<(Vec<String>, Range<u64>)> = Vec::new();
        for name in self.metadata.offset_keys() {
            let (start, end) = self.info(&name).data_offsets;
            let range = self.data_start + start as u64..self.data_start + end as u64;
            match batches.last_mut() {
                Some((names, batch))
                    if batch.end == range.start && range.end - batch.start <= batch_bytes =>
                {
                    names.push(name);
                    batch.end = range.end;
                }
                _ => batches.push((vec![name], range)),
            }
        }
        batches
    }

    /// Where tensor `name`'s bytes lie within the bytes read from `range`.
    fn within(&self, name: &str, range: &Range<u64>) -> Range<usize> {
        let (start, end) = self.info(name).data_offsets;
        let offset = |at: usize| (self.data_start + at as u64 - range.start) as usize;
        offset(start)..offset(end)
    }

    fn info(&self, name: &str) -> &safetensors::tensor::TensorInfo {
        self.metadata
            .info(name)
            .expect("names come from the header")
    }

    /// A standalone safetensors buffer holding just `names`, whose bytes are `bytes` (read from
    /// `range`): what burn-store's loader takes.
    fn standalone(&self, names: &[String], range: &Range<u64>, bytes: &[u8]) -> Vec<u8> {
        let views = names.iter().map(|name| {
            let info = self.info(name);
            let view = safetensors::tensor::TensorView::new(
                info.dtype,
                info.shape.clone(),
                &bytes[self.within(name, range)],
            )
            .expect("the header was validated");
            (name.as_str(), view)
        });
        safetensors::serialize(views, None).expect("re-serialising validated tensors")
    }
}

/// Loads `weights` into `module`, converting every float tensor to `dtype` (`None`: each stays as
/// stored, see `device::load_dtype`). `remaps` are (regex, replacement) pairs from checkpoint keys
/// to module paths, for the few places where diffusers' layout is not a plain field path (a
/// `text_model.` prefix, list-valued layers).
///
/// Files are streamed: header first, then [`BATCH_BYTES`] of tensors at a time, each batch
/// uploaded to the device before the next is read.
pub async fn load_into<M: Module + ModuleSnapshot>(
    module: M,
    files: &impl ModelFiles,
    weights: &WeightFiles,
    remaps: &[(&str, &str)],
    dtype: Option<DType>,
) -> Result<M> {
    let (module, _) = load_into_except(module, files, weights, remaps, dtype, &[]).await?;
    Ok(module)
}

/// A tensor as its file stores it: type, shape and little-endian bytes.
pub struct StoredTensor {
    pub name: String,
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// [`load_into`], setting aside the tensors whose file keys are in `set_aside`: they are handed
/// back as stored, from the same single read of the files, and never reach the module.
pub async fn load_into_except<M: Module + ModuleSnapshot>(
    mut module: M,
    files: &impl ModelFiles,
    weights: &WeightFiles,
    remaps: &[(&str, &str)],
    dtype: Option<DType>,
    set_aside: &[&str],
) -> Result<(M, Vec<StoredTensor>)> {
    let mut applier = Applier::new(remaps, dtype);
    let mut aside = Vec::new();
    for file in &weights.files {
        let path = files.display_path(file);
        let header = SafetensorsHeader::read(files, file).await?;
        for (names, range) in header.batches(BATCH_BYTES) {
            let bytes = files.read_range(file, range.clone()).await?;
            let (asked, names): (Vec<String>, Vec<String>) = names
                .into_iter()
                .partition(|name| set_aside.contains(&name.as_str()));
            for name in asked {
                let info = header.info(&name);
                aside.push(StoredTensor {
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    bytes: bytes[header.within(&name, &range)].to_vec(),
                    name,
                });
            }
            if names.is_empty() {
                continue;
            }
            let batch = header.standalone(&names, &range, &bytes);
            drop(bytes);
            module = applier.apply(module, batch, &path)?;
        }
    }
    applier.finish(&files.display_path(&weights.files[0]))?;
    Ok((module, aside))
}

/// Applies safetensors buffers to a module one batch at a time, keeping what the module expects
/// and what has been applied, so the last check finds any tensor no batch held. Other formats
/// (GGUF) hand it their tensors re-framed as safetensors.
pub struct Applier<'a> {
    remaps: &'a [(&'a str, &'a str)],
    dtype: Option<DType>,
    expected: Option<BTreeSet<String>>,
    applied: BTreeSet<String>,
}

impl<'a> Applier<'a> {
    pub fn new(remaps: &'a [(&'a str, &'a str)], dtype: Option<DType>) -> Self {
        Applier {
            remaps,
            dtype,
            expected: None,
            applied: BTreeSet::new(),
        }
    }

    /// `batch`, a safetensors buffer, into `module`; a tensor of the wrong shape or one the
    /// module has no place for is an error naming `path` and the tensor.
    pub fn apply<M: Module + ModuleSnapshot>(
        &mut self,
        mut module: M,
        batch: Vec<u8>,
        path: &std::path::Path,
    ) -> Result<M> {
        let store = SafetensorsStore::from_bytes(Some(batch));
        let mut store = match self.dtype {
            Some(dtype) => {
                store.with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(dtype)))
            }
            None => store.with_from_adapter(PyTorchToBurnAdapter),
        }
        .allow_partial(true)
        // `proj_in` is a linear layer or a convolution: an enum whose variant is not in
        // the key.
        .skip_enum_variants(true)
        .validate(false);
        for (pattern, replacement) in self.remaps {
            store = store.with_key_remapping(*pattern, *replacement);
        }
        let result = module
            .load_from(&mut store)
            .map_err(|error| EngineError::Weights {
                path: path.to_owned(),
                problem: error.to_string(),
            })?;
        if let Some(error) = result.errors.first() {
            return Err(tensor_error(path, error));
        }
        if let Some(unused) = result
            .unused
            .iter()
            .find(|key| !IGNORED_TENSORS.contains(&key.as_str()))
        {
            return Err(EngineError::Tensor {
                path: path.to_owned(),
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
        self.expected.get_or_insert(all);
        self.applied.extend(result.applied);
        Ok(module)
    }

    /// Every tensor the module expects was applied; `path` names the files in the error.
    pub fn finish(self, path: &std::path::Path) -> Result<()> {
        let expected = self.expected.unwrap_or_default();
        match expected.difference(&self.applied).next() {
            Some(missing) => Err(EngineError::Tensor {
                path: path.to_owned(),
                tensor: missing.clone(),
                problem: "is missing from the weights".into(),
            }),
            None => Ok(()),
        }
    }
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
