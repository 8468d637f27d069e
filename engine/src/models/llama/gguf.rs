//! A GGUF file's tensors as transformers' checkpoint keys: llama.cpp's names mapped back, every
//! tensor dequantised, and the rows of a Llama's q/k projections put back in transformers'
//! order (llama.cpp's converter interleaves each head's two rotary halves).

use std::collections::HashSet;
use std::path::Path;

use burn::tensor::Device;

use crate::device::compute_dtype;
use crate::error::{EngineError, Result};
use crate::loaders::files::{Checked, ModelFiles};
use crate::loaders::gguf::{
    Gguf, HeaderProblem, MAX_HEADER_BYTES, TensorInfo, TensorType, dequantize,
};
use crate::loaders::weights::{Applier, BATCH_BYTES};
use crate::models::llama::config::{Family, LlamaConfig};
use crate::models::llama::model::LlamaForCausalLM;
use crate::models::llama::quantized::QuantizedMatrix;

/// Reads and checks a GGUF header, asking for more of the file until the header is whole.
pub async fn read_header(files: &impl ModelFiles, relative: &str) -> Result<Gguf> {
    let path = files.display_path(relative);
    let size = files
        .size(relative)
        .await?
        .ok_or_else(|| EngineError::MissingFile {
            path: path.clone(),
            what: "the language model (GGUF)",
        })?;
    let mut length = size.min(1 << 20);
    loop {
        let bytes = files.read_range(relative, 0..length).await?;
        match Gguf::parse(&bytes, size) {
            Ok(gguf) => return Ok(gguf),
            Err(HeaderProblem::NeedMore) if length < size.min(MAX_HEADER_BYTES) => {
                length = (length * 4).min(size).min(MAX_HEADER_BYTES);
            }
            Err(HeaderProblem::NeedMore) => unreachable!("the parser refuses past the limit"),
            Err(HeaderProblem::Invalid(problem)) => {
                return Err(EngineError::Weights { path, problem });
            }
        }
    }
}

/// The model's shape from the header, checked like a `config.json`.
pub fn config(gguf: &Gguf, path: &Path) -> Result<LlamaConfig> {
    let invalid = |problem| EngineError::Config {
        path: path.to_owned(),
        problem,
    };
    let config =
        LlamaConfig::from_gguf(gguf, gguf.tensor("output.weight").is_some()).map_err(invalid)?;
    config.check().map_err(invalid)?;
    Ok(config)
}

/// transformers' key for llama.cpp's tensor name (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`).
pub fn checkpoint_key(name: &str) -> Option<String> {
    Some(match name {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let rest = name.strip_prefix("blk.")?;
            let (layer, rest) = rest.split_once('.')?;
            layer.parse::<usize>().ok()?;
            let (part, suffix) = rest.split_once('.')?;
            let module = match part {
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                _ => return None,
            };
            if !matches!(suffix, "weight" | "bias") {
                return None;
            }
            format!("model.layers.{layer}.{module}.{suffix}")
        }
    })
}

/// Whether `tensor` stays in its GGUF blocks on `device`: block-quantised matrices on the
/// processor (burn's CPU backend, whose memory this process can read). A GPU holds every weight
/// dequantised in the type it computes in.
fn stays_quantized(tensor: &TensorInfo, device: &Device) -> bool {
    let blocks = !matches!(
        tensor.kind,
        TensorType::F32 | TensorType::F16 | TensorType::BF16
    );
    blocks && tensor.shape.len() == 2 && *device == Device::flex()
}

/// The `[rows, columns]` a 2-D weight at `key` must have in `config`'s model.
fn expected_shape(config: &LlamaConfig, key: &str) -> Option<[usize; 2]> {
    let hidden = config.hidden_size;
    let query = config.num_attention_heads * config.head_size();
    let key_value = config.key_value_heads() * config.head_size();
    let intermediate = config.intermediate_size;
    let name = key.rsplit('.').nth(1)?;
    Some(match name {
        "embed_tokens" | "lm_head" => [config.vocab_size, hidden],
        "q_proj" => [query, hidden],
        "k_proj" | "v_proj" => [key_value, hidden],
        "o_proj" => [hidden, query],
        "gate_proj" | "up_proj" => [intermediate, hidden],
        "down_proj" => [hidden, intermediate],
        _ => return None,
    })
}

/// Loads the GGUF's tensors into `config`'s model on `device`, [`BATCH_BYTES`] of f32 at a time
/// (block-quantised matrices stay as they are on the processor).
pub async fn load(
    files: &impl ModelFiles,
    relative: &str,
    gguf: &Gguf,
    config: &LlamaConfig,
    device: &Device,
) -> Result<LlamaForCausalLM> {
    let path = files.display_path(relative);
    let kept: HashSet<String> = gguf
        .tensors
        .iter()
        .filter(|tensor| stays_quantized(tensor, device))
        .filter_map(|tensor| checkpoint_key(&tensor.name))
        .collect();
    let mut model = config.init_keeping_quantized(device, &|key| kept.contains(key));
    let mut applier = Applier::new(&[], Some(compute_dtype(device)));
    let mut tensors: Vec<&TensorInfo> = gguf.tensors.iter().collect();
    tensors.sort_by_key(|tensor| tensor.range.start);
    let mut batch: Vec<&TensorInfo> = Vec::new();
    let mut batch_values = 0u64;
    let mut quantized = Vec::new();
    for (index, tensor) in tensors.iter().enumerate() {
        batch.push(tensor);
        batch_values += match stays_quantized(tensor, device) {
            true => tensor.range.end - tensor.range.start,
            false => tensor.elements() as u64 * 4,
        };
        if batch_values < BATCH_BYTES && index + 1 < tensors.len() {
            continue;
        }
        let span = batch[0].range.start..batch[batch.len() - 1].range.end;
        let bytes = files.read_range(relative, span.clone()).await?;
        let mut converted = Vec::with_capacity(batch.len());
        for tensor in batch.drain(..) {
            let key = checkpoint_key(&tensor.name).ok_or_else(|| EngineError::Tensor {
                path: path.clone(),
                tensor: tensor.name.clone(),
                problem: format!("is not part of a {} model", config.model_type),
            })?;
            let start = (tensor.range.start - span.start) as usize;
            let end = (tensor.range.end - span.start) as usize;
            let shape = tensor.torch_shape();
            let heads = match key.rsplit('.').nth(1) {
                _ if config.family() != Family::Llama || shape.len() != 2 => None,
                Some("q_proj") => Some(config.num_attention_heads),
                Some("k_proj") => Some(config.key_value_heads()),
                _ => None,
            };
            let unpermuted = |rows: &[u8], row_bytes: usize, heads: usize| {
                unpermute_rows(rows, shape[0], row_bytes, heads).ok_or_else(|| {
                    EngineError::Tensor {
                        path: path.clone(),
                        tensor: tensor.name.clone(),
                        problem: format!("has {} rows, not {heads} heads' worth", shape[0]),
                    }
                })
            };
            if stays_quantized(tensor, device) {
                let expected = expected_shape(config, &key);
                if expected != Some([shape[0], shape[1]]) {
                    return Err(EngineError::Tensor {
                        path: path.clone(),
                        tensor: tensor.name.clone(),
                        problem: format!(
                            "has shape {shape:?} but this model needs {:?}",
                            expected.unwrap_or_default()
                        ),
                    });
                }
                let blocks = &bytes[start..end];
                let row_bytes = blocks.len() / shape[0];
                let blocks = match heads {
                    Some(heads) => unpermuted(blocks, row_bytes, heads)?,
                    None => blocks.to_vec(),
                };
                quantized.push((
                    key,
                    QuantizedMatrix::new(tensor.kind, shape[0], shape[1], blocks),
                ));
                continue;
            }
            let mut values = Vec::new();
            dequantize(tensor.kind, &bytes[start..end], &mut values);
            let mut bytes: Vec<u8> = values
                .iter()
                .flat_map(|value| value.to_le_bytes())
                .collect();
            drop(values);
            if let Some(heads) = heads {
                bytes = unpermuted(&bytes, 4 * shape.last().copied().unwrap_or(1), heads)?;
            }
            converted.push((key, shape, bytes));
        }
        drop(bytes);
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = converted
            .iter()
            .map(|(key, shape, bytes)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytes,
                )
                .expect("a shape and its values");
                (key.clone(), view)
            })
            .collect();
        let views_empty = views.is_empty();
        let buffer = safetensors::serialize(views, None).map_err(|error| EngineError::Weights {
            path: path.clone(),
            problem: error.to_string(),
        })?;
        drop(converted);
        batch_values = 0;
        if !views_empty {
            model = applier.apply(model, buffer, &path)?;
        }
    }
    applier.finish(&path)?;
    for (key, matrix) in quantized {
        if !model.attach_quantized(&key, matrix) {
            return Err(EngineError::Tensor {
                path,
                tensor: key,
                problem: "is not part of this model".into(),
            });
        }
    }
    Ok(model)
}

/// llama.cpp's converter stores each head's rows as (pair index, half) instead of transformers'
/// (half, pair index); this puts `rows` rows of `row_bytes` bytes each (f32 values or whole
/// quantised blocks alike) back. `None` when the rows do not split into `heads`.
fn unpermute_rows(bytes: &[u8], rows: usize, row_bytes: usize, heads: usize) -> Option<Vec<u8>> {
    if heads == 0 || !rows.is_multiple_of(2 * heads) || bytes.len() != rows * row_bytes {
        return None;
    }
    let head_rows = rows / heads;
    let half = head_rows / 2;
    let mut out = vec![0; bytes.len()];
    for head in 0..heads {
        for side in 0..2 {
            for pair in 0..half {
                let from = head * head_rows + pair * 2 + side;
                let to = head * head_rows + side * half + pair;
                out[to * row_bytes..(to + 1) * row_bytes]
                    .copy_from_slice(&bytes[from * row_bytes..(from + 1) * row_bytes]);
            }
        }
    }
    Some(out)
}
