//! Avatar training computes what diffusers' textual-inversion training computes: on the tiny
//! fixture with fixed vectors, latents, noise, timesteps and prompt, the loss and its gradient with
//! respect to the token vectors match torch autograd (models/make_avatar_fixtures.py) within 1e-4,
//! with and without gradient checkpointing (which recomputes activations in the backward pass).

mod common;

use common::avatar::avatar_errors_against_torch;
use engine::device::ComputeBackend;

#[test]
fn loss_and_token_gradients_match_torch_autograd() {
    check_against_torch(ComputeBackend::Cpu.device().autodiff());
}

#[test]
fn gradient_checkpointing_gives_the_same_gradients() {
    check_against_torch(
        ComputeBackend::Cpu
            .device()
            .autodiff()
            .gradient_checkpointing(),
    );
}

fn check_against_torch(device: burn::tensor::Device) {
    for (loss_error, gradient_error) in avatar_errors_against_torch(device, None) {
        assert!(loss_error <= 1e-4, "loss relative error {loss_error}");
        assert!(
            gradient_error <= 1e-4,
            "gradient relative L2 error {gradient_error}"
        );
    }
}
