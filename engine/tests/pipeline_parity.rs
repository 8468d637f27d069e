//! Text to image end to end, against diffusers' `StableDiffusionPipeline` given the same starting
//! noise: final latents within 1e-3 relative L2, the PNG within 1/255 mean absolute difference.

mod common;

use common::pipeline::{assert_pipeline_within, request};
use common::{device, fixtures, model};
use engine::loaders::files::block_on;
use engine::pipelines::stable_diffusion::{StableDiffusion, gaussian};
use engine::schedulers::SchedulerKind;
use rand::SeedableRng;

fn assert_pipeline_matches(name: &str) {
    assert_pipeline_matches_on(name, &device());
}

fn assert_pipeline_matches_on(name: &str, device: &burn::tensor::Device) {
    assert_pipeline_within(name, device, 1e-3, 1.0);
}

#[test]
fn turbo_like_one_step_euler_ancestral_matches_diffusers() {
    assert_pipeline_matches("tiny-sd2");
}

#[test]
fn lcm_like_guidance_embedding_matches_diffusers() {
    assert_pipeline_matches("tiny-sd1");
}

#[test]
fn sdxs_512_layout_one_step_with_its_tiny_autoencoder_matches_diffusers() {
    // SDXS-512 as the hub ships it: only_cross_attention, no mid block, AutoencoderTiny as vae/
    // (scaling factor 1.0), Euler with trailing spacing.
    assert_pipeline_matches("tiny-sdxs-512");
}

#[test]
fn sdxs_like_ddim_with_guidance_and_negative_prompt_matches_diffusers() {
    assert_pipeline_matches("tiny-sdxs");
}

/// The real WGSL kernels (burn-wgpu; lavapipe's Vulkan on machines without a GPU), in f32, with
/// the GPU's matmul convolutions (`engine::models::conv`), as the CLI and the browser choose them.
#[test]
fn the_gpu_backend_matches_diffusers_too() {
    let (device, _) = engine::device::ComputeBackend::Gpu
        .device_with(Some(engine::device::Precision::F32))
        .unwrap();
    assert_pipeline_matches_on("tiny-sd2", &device);
}

/// burn's flash attention, which the GPU takes outside training, against the slices.
#[test]
fn flash_attention_on_the_gpu_matches_the_slices() {
    let (device, _) = engine::device::ComputeBackend::Gpu
        .device_with(Some(engine::device::Precision::F32))
        .unwrap();
    common::attention::assert_flash_matches_slices(&device, 1e-5);
}

/// The avatar's training attention (scores recomputed in the backward pass) gives the
/// gradients of the slices differentiated as ordinary operations, on the GPU and on the CPU.
/// The gradients subtract near-equal terms (`dS = P ⊙ (dP − rowsum(dO ⊙ o))`) and the forward
/// passes accumulate differently (flash, burn's fused CPU kernel), so they differ by up to about
/// 1e-5 of their largest value in f32 on random inputs; a 0.1 % error is 1e-3.
#[test]
fn training_attention_on_the_gpu_has_the_slices_gradients() {
    let (device, _) = engine::device::ComputeBackend::Gpu
        .device_with(Some(engine::device::Precision::F32))
        .unwrap();
    common::attention::assert_recomputed_gradients_match_slices(&device, 1e-4);
}

#[test]
fn training_attention_on_the_cpu_has_the_slices_gradients() {
    let device = engine::device::ComputeBackend::Cpu.device();
    common::attention::assert_recomputed_gradients_match_slices(&device, 1e-4);
}

#[test]
fn noisy_samplers_are_deterministic_under_a_seed() {
    let model = block_on(StableDiffusion::load(&model("tiny-sd2"), None, &device())).unwrap();
    let mut request = request("tiny-sd2");
    request.steps = 3;
    request.noise = None;
    request.scheduler = Some(SchedulerKind::EulerAncestral);
    let first = block_on(model.generate(&request, |_| true)).unwrap();
    let again = block_on(model.generate(&request, |_| true)).unwrap();
    assert_eq!(first.latents, again.latents);
    request.seed = 1;
    let other = block_on(model.generate(&request, |_| true)).unwrap();
    assert_ne!(first.latents, other.latents);
}

#[test]
fn the_noise_source_is_standard_normal() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let draws = gaussian(&mut rng, 200_000);
    let mean = draws.iter().map(|x| f64::from(*x)).sum::<f64>() / draws.len() as f64;
    let variance = draws
        .iter()
        .map(|x| (f64::from(*x) - mean).powi(2))
        .sum::<f64>()
        / draws.len() as f64;
    let beyond_two_sigma =
        draws.iter().filter(|x| x.abs() > 2.0).count() as f64 / draws.len() as f64;
    assert!(mean.abs() < 0.01, "mean {mean}");
    assert!((variance - 1.0).abs() < 0.02, "variance {variance}");
    assert!(
        (beyond_two_sigma - 0.0455).abs() < 0.003,
        "P(|x| > 2) = {beyond_two_sigma}"
    );
}

#[test]
fn cancelling_stops_the_loop() {
    let model = block_on(StableDiffusion::load(&model("tiny-sdxs"), None, &device())).unwrap();
    let mut seen = 0;
    let result = block_on(model.generate(&request("tiny-sdxs"), |progress| {
        seen = progress.step;
        false
    }));
    assert!(matches!(result, Err(engine::EngineError::Cancelled)));
    assert_eq!(seen, 1);
}

#[test]
fn the_cli_generates_a_png_and_latents() {
    let dir = std::env::temp_dir().join(format!("toddler-generate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (model, noise) = (
        fixtures().join("tiny-sd2"),
        fixtures().join("tiny-sd2-noise.safetensors"),
    );
    let (picture, latents) = (dir.join("cat.png"), dir.join("latents.safetensors"));
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["generate".as_ref(), "--model".as_ref(), model.as_os_str()];
    for word in [
        "--prompt",
        "a photo of a cat",
        "--width",
        "32",
        "--height",
        "32",
        "--steps",
        "1",
    ] {
        args.push(word.as_ref());
    }
    args.extend([
        "--noise".as_ref(),
        noise.as_os_str(),
        "--out".as_ref(),
        picture.as_os_str(),
    ]);
    args.extend(["--latents-out".as_ref(), latents.as_os_str()]);
    common::run_toddler(&args);
    let picture = image::open(dir.join("cat.png")).unwrap().to_rgb8();
    let expected = image::open(fixtures().join("tiny-sd2-golden.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(picture.dimensions(), (32, 32));
    let difference = picture
        .as_raw()
        .iter()
        .zip(expected.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / 3072.0;
    assert!(difference <= 1.0, "{difference}");
    let latents = std::fs::read(dir.join("latents.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&latents).unwrap();
    assert_eq!(tensors.tensor("latents").unwrap().shape(), &[1, 4, 4, 4]);
    std::fs::remove_dir_all(&dir).unwrap();
}
