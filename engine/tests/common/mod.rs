//! Shared by the parity tests: fixture paths, golden outputs, the test device, comparisons.

#![allow(dead_code)] // Each test binary uses its own subset.

pub mod attention;
pub mod avatar;
pub mod pipeline;

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor};
use engine::device::ComputeBackend;
use engine::loaders::files::{Folder, InMemory, ModelFiles, block_on};
use safetensors::SafeTensors;

/// The one place that picks the backend the tests run on.
pub fn device() -> Device {
    ComputeBackend::Cpu.device()
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/fixtures")
}

pub fn model(name: &str) -> Folder {
    Folder(fixtures().join(name))
}

/// Every file of a fixture folder, in memory, to be tampered with.
pub fn model_in_memory(name: &str) -> InMemory {
    let root = fixtures().join(name);
    let mut files = HashMap::new();
    for component in std::fs::read_dir(&root).unwrap() {
        let component = component.unwrap().path();
        let entries: Vec<PathBuf> = if component.is_dir() {
            std::fs::read_dir(&component)
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .collect()
        } else {
            vec![component]
        };
        for path in entries {
            let relative = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(relative, std::fs::read(&path).unwrap());
        }
    }
    InMemory(files)
}

pub fn golden_json() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("text-golden.json")).unwrap()).unwrap()
}

/// A golden tensor as (shape, f32 values).
pub fn golden_tensor(file: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let tensor = tensors
        .tensor(name)
        .unwrap_or_else(|_| panic!("golden tensor {name} in {file}"));
    assert_eq!(tensor.dtype(), safetensors::Dtype::F32);
    let values = engine::loaders::weights::float_values(tensor.dtype(), tensor.data()).unwrap();
    (tensor.shape().to_vec(), values)
}

pub fn values<const D: usize>(tensor: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let shape = tensor.dims().to_vec();
    (
        shape,
        tensor
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap(),
    )
}

/// The largest absolute difference; panics on a shape mismatch.
pub fn max_abs_diff(actual: &(Vec<usize>, Vec<f32>), expected: &(Vec<usize>, Vec<f32>)) -> f32 {
    assert_eq!(actual.0, expected.0, "shapes differ");
    actual
        .1
        .iter()
        .zip(&expected.1)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Reads a fixture folder's file through the folder API (for tampering).
pub fn read(files: &impl ModelFiles, relative: &str) -> Vec<u8> {
    block_on(files.read(relative)).unwrap().unwrap()
}

/// A golden tensor as a burn tensor on the test device.
pub fn golden_burn<const D: usize>(file: &str, name: &str) -> Tensor<D> {
    let (shape, values) = golden_tensor(file, name);
    Tensor::from_data(burn::tensor::TensorData::new(values, shape), &device())
}

/// ‖actual − expected‖ / ‖expected‖.
pub fn relative_l2(actual: &(Vec<usize>, Vec<f32>), expected: &(Vec<usize>, Vec<f32>)) -> f64 {
    assert_eq!(actual.0, expected.0, "shapes differ");
    let difference: f64 = actual
        .1
        .iter()
        .zip(&expected.1)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = expected.1.iter().map(|b| f64::from(*b).powi(2)).sum();
    (difference / norm).sqrt()
}

/// `toddler` with `args`, successful or not.
pub fn toddler_output(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_toddler"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs the `toddler` CLI; panics with its error output when it fails.
pub fn run_toddler(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let output = toddler_output(args);
    assert!(
        output.status.success(),
        "toddler failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The real SmolLM2-135M-Instruct GGUF: `TODDLER_SMOLLM2`, or where `cargo xtask language-model`
/// caches it.
pub fn real_model_path() -> PathBuf {
    std::env::var_os("TODDLER_SMOLLM2").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/toddlerstories/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        },
        PathBuf::from,
    )
}
