//! Avatar training computes what diffusers' textual-inversion training computes: on the tiny
//! fixture with fixed vectors, latents, noise, timesteps and prompt, the loss and its gradient with
//! respect to the token vectors match torch autograd (models/make_avatar_fixtures.py) within 1e-4,
//! with and without gradient checkpointing (which recomputes activations in the backward pass).

mod common;

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use common::{fixtures, golden_tensor, model, relative_l2};
use engine::avatar::{Example, Frozen, denoising_loss};
use engine::device::ComputeBackend;
use engine::files::block_on;
use engine::prompt::PromptEncoder;
use engine::schedulers::SchedulerConfig;
use engine::unet_2d::UNet2DConditionModel;

const GOLDEN: &str = "avatar-golden.safetensors";

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
    let files = model("tiny-sd2");
    let mut text = block_on(PromptEncoder::load(&files, None, &device)).unwrap();
    text.text_encoder = text.text_encoder.no_grad();
    let (unet, _) = block_on(UNet2DConditionModel::load(
        &files,
        None,
        &device,
        burn::tensor::DType::F32,
    ))
    .unwrap();
    let unet = unet.no_grad();
    let scheduler: SchedulerConfig = serde_json::from_slice(
        &std::fs::read(fixtures().join("tiny-sd2/scheduler/scheduler_config.json")).unwrap(),
    )
    .unwrap();
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("avatar-golden.json")).unwrap())
            .unwrap();
    let tokens: Vec<String> = serde_json::from_value(golden["tokens"].clone()).unwrap();
    text.add_placeholder_tokens(&tokens).unwrap();
    // The engine expands `<kid>` to both vectors, as diffusers' maybe_convert_prompt does.
    let prompt = "a photo of <kid>";
    let expected_ids: Vec<u32> = serde_json::from_value(golden["input_ids"].clone()).unwrap();
    assert_eq!(text.input_ids(prompt).unwrap(), expected_ids);

    let tensor = |name: &str| {
        let (shape, values) = golden_tensor(GOLDEN, name);
        (shape, values)
    };
    let burn4 = |name: &str| {
        let (shape, values) = tensor(name);
        Tensor::<4>::from_data(TensorData::new(values, shape), &device)
    };
    let frozen = Frozen {
        text: &text,
        unet: &unet,
        scheduler: &scheduler,
    };
    for case in golden["cases"].as_array().unwrap() {
        let timestep = case["timestep"].as_u64().unwrap() as usize;
        let (shape, values) = tensor("vectors");
        let vectors =
            Tensor::<2>::from_data(TensorData::new(values, shape), &device).require_grad();
        let example = Example {
            latents: burn4("latents"),
            noise: burn4("noise"),
            timestep,
            prompt: prompt.into(),
        };
        let loss = denoising_loss(&frozen, vectors.clone(), &example).unwrap();
        let gradients = loss.backward();
        let gradient = vectors
            .grad(&gradients)
            .expect("a gradient for the vectors");
        let loss_value = loss
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()[0];
        let expected_loss = tensor(&format!("t{timestep}.loss")).1[0];
        let gradient = common::values(gradient);
        let error = relative_l2(&gradient, &tensor(&format!("t{timestep}.grad")));
        let loss_error = ((loss_value - expected_loss) / expected_loss).abs();
        eprintln!(
            "t={timestep}: loss {loss_value} (relative error {loss_error:e}), gradient relative L2 {error:e}"
        );
        assert!(loss_error <= 1e-4, "loss {loss_value} vs {expected_loss}");
        assert!(error <= 1e-4, "gradient relative L2 error {error}");
    }
}
