//! Pivotal tuning computes what peft + torch autograd compute: on the avatar case of
//! `avatar_parity.rs` with a rank-2 LoRA on the UNet's attention projections (both factors
//! random, from models/make_lora_fixtures.py), the loss and its gradients with respect to the
//! token vectors and every LoRA factor match within 1e-4 relative, with and without gradient
//! checkpointing.

mod common;

use burn::tensor::{DType, Tensor, TensorData};
use common::{fixtures, golden_tensor, relative_l2};
use engine::avatar::{Example, Frozen, denoising_loss};
use engine::device::ComputeBackend;
use engine::lora::{LoraFile, TrainableLora};

const GOLDEN: &str = "loras/avatar-lora-golden.safetensors";
const START: &str = "avatar-golden.safetensors";
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
    let (text, unet, scheduler, golden) = common::avatar::golden_case(&device);

    let start = fixtures().join("loras/avatar-lora-start.safetensors");
    let file = LoraFile::from_safetensors(&std::fs::read(&start).unwrap(), &start).unwrap();
    let lora = TrainableLora::from_file(&unet, &file, &device).unwrap();
    assert_eq!(lora.rank, 2);
    let adapted = lora.attach(unet.clone());
    let frozen = Frozen {
        text: &text,
        unet: &adapted,
        scheduler: &scheduler,
    };
    let tensor4 = |name: &str| {
        let (shape, values) = golden_tensor(START, name);
        Tensor::<4>::from_data(TensorData::new(values, shape), (&device, DType::F32))
    };
    for case in golden["cases"].as_array().unwrap() {
        let timestep = case["timestep"].as_u64().unwrap() as usize;
        let (shape, values) = golden_tensor(START, "vectors");
        let vectors = Tensor::<2>::from_data(TensorData::new(values, shape), (&device, DType::F32))
            .require_grad();
        let example = Example {
            latents: tensor4("latents"),
            noise: tensor4("noise"),
            timestep,
            prompt: "a photo of <kid>".into(),
        };
        let loss = denoising_loss(&frozen, vectors.clone(), &example).unwrap();
        let gradients = loss.backward();
        let loss = common::values(loss).1[0];
        let expected = golden_tensor(GOLDEN, &format!("t{timestep}.loss")).1[0];
        let loss_error = f64::from(((loss - expected) / expected).abs());
        let vector_error = relative_l2(
            &common::values(vectors.grad(&gradients).unwrap()),
            &golden_tensor(GOLDEN, &format!("t{timestep}.vectors.grad")),
        );
        let mut worst = (0.0, String::new());
        for (module, pair) in lora.modules().iter().zip(&lora.weights.layers) {
            for (factor, param) in [("lora_A", &pair.down), ("lora_B", &pair.up)] {
                let gradient = param.val().grad(&gradients).expect("a factor's gradient");
                let (shape, values) = golden_tensor(
                    GOLDEN,
                    &format!("t{timestep}.{module}.{factor}.weight.grad"),
                );
                let error = relative_l2(&common::values(gradient), &(shape, values));
                if error > worst.0 {
                    worst = (error, format!("{module}.{factor}"));
                }
            }
        }
        eprintln!(
            "t={timestep}: loss {loss_error:e}, vectors {vector_error:e}, worst of {} factors {:e} ({})",
            2 * lora.weights.layers.len(),
            worst.0,
            worst.1
        );
        assert!(loss_error <= TOLERANCE, "loss {loss_error}");
        assert!(vector_error <= TOLERANCE, "vector gradient {vector_error}");
        assert!(worst.0 <= TOLERANCE, "{}: {}", worst.1, worst.0);
    }
    assert_eq!(lora.parameter_count(), unet_factor_count(&file));
}

/// Values in the file's factors.
fn unet_factor_count(file: &LoraFile) -> usize {
    assert_eq!(file.layer_count(), 32);
    let start = fixtures().join("loras/avatar-lora-start.safetensors");
    let bytes = std::fs::read(start).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .iter()
        .map(|(_, view)| view.shape().iter().product::<usize>())
        .sum()
}
