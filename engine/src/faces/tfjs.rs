//! face-api.js' weights: a tfjs layers-format model (a JSON manifest and the `.bin` it
//! describes), checked against its manifest and read into floats by name, 8-bit quantised
//! weights dequantised as tfjs does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::Deserialize;

use crate::error::{EngineError, Result};

#[derive(Deserialize)]
struct WeightGroup {
    weights: Vec<WeightEntry>,
}

#[derive(Deserialize)]
struct WeightEntry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quantization>,
}

#[derive(Deserialize)]
struct Quantization {
    dtype: String,
    #[serde(default)]
    scale: f64,
    #[serde(default)]
    min: f64,
}

/// A tfjs layers-format model's weights (a JSON manifest and the `.bin` it describes), read
/// into floats by name.
pub(super) struct TfjsWeights {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// No face model comes near this many numbers; a manifest asking for more is refused before
/// anything is allocated.
const MAX_VALUES: usize = 1 << 26;

impl TfjsWeights {
    pub(super) fn parse(manifest: &[u8], bin: &[u8], path: &Path) -> Result<TfjsWeights> {
        let problem = |problem: String| EngineError::Weights {
            path: path.to_owned(),
            problem,
        };
        let groups: Vec<WeightGroup> =
            serde_json::from_slice(manifest).map_err(|error| EngineError::Json {
                path: path.to_owned(),
                what: "a face model's weights manifest",
                message: error.to_string(),
            })?;
        let mut tensors = HashMap::new();
        let mut offset = 0usize;
        let mut total = 0usize;
        for entry in groups.into_iter().flat_map(|group| group.weights) {
            let count = entry
                .shape
                .iter()
                .try_fold(1usize, |count, side| count.checked_mul(*side))
                .filter(|count| total + count <= MAX_VALUES)
                .ok_or_else(|| {
                    problem(format!(
                        "`{}` has an impossible shape {:?}",
                        entry.name, entry.shape
                    ))
                })?;
            total += count;
            let (width, decode): (usize, fn(&[u8]) -> f64) = match (
                entry.dtype.as_str(),
                entry.quantization.as_ref().map(|q| q.dtype.as_str()),
            ) {
                ("float32", None) => (4, |b| {
                    f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }),
                ("float32", Some("uint8")) => (1, |b| f64::from(b[0])),
                ("float32", Some("uint16")) => (2, |b| f64::from(u16::from_le_bytes([b[0], b[1]]))),
                ("float32", Some("float16")) => (2, |b| {
                    f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                }),
                (dtype, quantised) => {
                    return Err(problem(format!(
                        "`{}` is stored as {dtype}{}, which a face model does not use",
                        entry.name,
                        quantised
                            .map(|q| format!(" quantised to {q}"))
                            .unwrap_or_default()
                    )));
                }
            };
            let end = offset
                .checked_add(count * width)
                .filter(|end| *end <= bin.len())
                .ok_or_else(|| problem(format!("the weights file ends before `{}`", entry.name)))?;
            let bytes = &bin[offset..end];
            // tfjs dequantises in doubles and stores f32: `q · scale + min`.
            let (scale, min) = match &entry.quantization {
                Some(q) if q.dtype != "float16" => (q.scale, q.min),
                _ => (1.0, 0.0),
            };
            let values: Vec<f32> = bytes
                .chunks_exact(width)
                .map(|chunk| (decode(chunk) * scale + min) as f32)
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(problem(format!(
                    "`{}` holds values that are not numbers",
                    entry.name
                )));
            }
            offset = end;
            tensors.insert(entry.name, (entry.shape, values));
        }
        if offset != bin.len() {
            return Err(problem(format!(
                "the weights file has {} bytes the manifest does not describe",
                bin.len() - offset
            )));
        }
        Ok(TfjsWeights {
            path: path.to_owned(),
            tensors,
        })
    }

    pub(super) fn problem(&self, problem: String) -> EngineError {
        EngineError::Weights {
            path: self.path.clone(),
            problem,
        }
    }

    pub(super) fn take(&mut self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let (shape, values) = self
            .tensors
            .remove(name)
            .ok_or_else(|| self.problem(format!("has no weight `{name}`")))?;
        if shape.len() != rank || shape.contains(&0) {
            return Err(self.problem(format!("`{name}` has shape {shape:?}, not {rank} sides")));
        }
        Ok((shape, values))
    }

    pub(super) fn vector(&mut self, name: &str, device: &Device) -> Result<Tensor<1>> {
        let (shape, values) = self.take(name, 1)?;
        Ok(Tensor::from_data(
            TensorData::new(values, [shape[0]]),
            (device, DType::F32),
        ))
    }

    /// A convolution's filters, `[height, width, in, out]` in tfjs, as burn's `[out, in, h, w]`.
    pub(super) fn filters(
        &mut self,
        name: &str,
        kernel: Option<(usize, usize)>,
        device: &Device,
    ) -> Result<Tensor<4>> {
        let (shape, tensor) = self.four_sided(name, device)?;
        if kernel.is_some_and(|(h, w)| (h, w) != (shape[0], shape[1])) {
            return Err(self.problem(format!(
                "`{name}` has shape {shape:?}, an unexpected kernel"
            )));
        }
        Ok(tensor.permute([3, 2, 0, 1]))
    }

    /// A depthwise filter, `[h, w, channels, 1]` in tfjs, as burn's grouped `[channels, 1, h, w]`.
    pub(super) fn depthwise(&mut self, name: &str, device: &Device) -> Result<Tensor<4>> {
        let (shape, tensor) = self.four_sided(name, device)?;
        if shape[3] != 1 {
            return Err(self.problem(format!(
                "`{name}` has shape {shape:?}, not one filter per channel"
            )));
        }
        Ok(tensor.permute([2, 3, 0, 1]))
    }

    /// A four-sided weight in tfjs' layout, with its shape.
    fn four_sided(&mut self, name: &str, device: &Device) -> Result<([usize; 4], Tensor<4>)> {
        let (shape, values) = self.take(name, 4)?;
        let shape = [shape[0], shape[1], shape[2], shape[3]];
        let tensor = Tensor::from_data(TensorData::new(values, shape), (device, DType::F32));
        Ok((shape, tensor))
    }

    /// Every weight in the file was used: a file for another network is refused.
    pub(super) fn all_used(&self) -> Result<()> {
        match self.tensors.keys().min() {
            Some(name) => Err(self.problem(format!(
                "has a weight `{name}` this face model does not use"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::ComputeBackend;

    fn manifest(weights: &str) -> Vec<u8> {
        format!(r#"[{{"paths": ["m.bin"], "weights": [{weights}]}}]"#).into_bytes()
    }

    fn parse(weights: &str, bin: &[u8]) -> std::result::Result<TfjsWeights, String> {
        TfjsWeights::parse(&manifest(weights), bin, Path::new("m.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn quantised_weights_read_as_tfjs_dequantises_them() {
        let weights = parse(
            r#"{"name": "w", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}"#,
            &[0, 2, 255],
        )
        .expect("a good file");
        assert_eq!(weights.tensors["w"].1, vec![-1.0, 0.0, 126.5]);
    }

    #[test]
    fn damaged_weights_are_refused_naming_the_problem() {
        let float = r#"{"name": "w", "shape": [2], "dtype": "float32"}"#;
        let short = parse(float, &[0; 7]).err().expect("too short");
        assert!(
            short.contains("m.json") && short.contains("ends before `w`"),
            "{short}"
        );
        let long = parse(float, &[0; 9]).err().expect("too long");
        assert!(
            long.contains("1 bytes the manifest does not describe"),
            "{long}"
        );
        let huge = parse(
            r#"{"name": "w", "shape": [4294967296, 4294967296, 16], "dtype": "float32"}"#,
            &[],
        )
        .err()
        .expect("huge");
        assert!(huge.contains("impossible shape"), "{huge}");
        let ints = parse(r#"{"name": "w", "shape": [1], "dtype": "int32"}"#, &[0; 4])
            .err()
            .expect("ints");
        assert!(ints.contains("stored as int32"), "{ints}");
        let nan = parse(float, &[0, 0, 0xc0, 0x7f, 0, 0, 0, 0])
            .err()
            .expect("NaN");
        assert!(nan.contains("not numbers"), "{nan}");
        let json = TfjsWeights::parse(b"{", &[], Path::new("m.json"))
            .err()
            .expect("bad JSON")
            .to_string();
        assert!(
            json.contains("m.json") && json.contains("not valid JSON"),
            "{json}"
        );
    }

    #[test]
    fn a_missing_or_foreign_weight_is_named() {
        let device = ComputeBackend::Cpu.device();
        let mut weights = parse(
            r#"{"name": "other", "shape": [1], "dtype": "float32"}"#,
            &[0; 4],
        )
        .expect("parsed");
        let missing = weights
            .vector("conv0/bias", &device)
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("has no weight `conv0/bias`"), "{missing}");
        let extra = weights.all_used().expect_err("extra").to_string();
        assert!(
            extra.contains("`other` this face model does not use"),
            "{extra}"
        );
    }
}
