//! burn's CPU backend computing in f16 (its `gemm` f16 kernels): what an avatar trains in on the
//! browser's CPU fallback at full size, where widening held f16 weights to f32 would keep every
//! widened weight alive for the backward pass (SD-Turbo: 7.5 GB at 128², docs/benchmarks.md).
//! Held to the GPU f16 suite's tolerances (tests/half_precision.rs).
//!
//! Every test in this binary computes in f16: burn fixes a device's float type once per process.

mod common;

use common::avatar::{assert_avatar_gradients_within_f16, assert_lora_gradients_within_f16};
use engine::device::{ComputeBackend, Precision};

fn cpu_f16() -> burn::tensor::Device {
    let (device, precision) = ComputeBackend::Cpu
        .device_with(Some(Precision::F16))
        .expect("burn's CPU backend computes in f16");
    assert_eq!(precision, Precision::F16);
    device
}

#[test]
fn avatar_gradients_through_an_f16_cpu_model_match_torch() {
    assert_avatar_gradients_within_f16(cpu_f16().autodiff(), None);
}

#[test]
fn lora_gradients_through_an_f16_cpu_model_match_peft() {
    assert_lora_gradients_within_f16(cpu_f16().autodiff(), None);
}
