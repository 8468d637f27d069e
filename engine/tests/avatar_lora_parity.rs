//! Pivotal tuning computes what peft + torch autograd compute: on the avatar case of
//! `avatar_parity.rs` with a rank-2 LoRA on the UNet's attention projections (both factors
//! random, from models/make_lora_fixtures.py), the loss and its gradients with respect to the
//! token vectors and every LoRA factor match within 1e-4 relative, with and without gradient
//! checkpointing.

mod common;

use common::avatar::lora_errors_against_peft;
use engine::device::ComputeBackend;

const TOLERANCE: f64 = 1e-4;

#[test]
fn lora_and_vector_gradients_match_peft() {
    check(ComputeBackend::Cpu.device().autodiff());
}

#[test]
fn gradient_checkpointing_gives_the_same_lora_gradients() {
    check(
        ComputeBackend::Cpu
            .device()
            .autodiff()
            .gradient_checkpointing(),
    );
}

fn check(device: burn::tensor::Device) {
    for errors in lora_errors_against_peft(device, None) {
        assert!(errors.loss <= TOLERANCE, "loss {}", errors.loss);
        assert!(errors.vectors <= TOLERANCE, "vectors {}", errors.vectors);
        // Every factor on its own, not only all together.
        let (worst, name) = errors.worst;
        assert!(worst <= TOLERANCE, "{name}: {worst}");
    }
}
