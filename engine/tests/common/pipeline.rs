//! One golden text-to-image run against diffusers', shared by the f32 and f16 suites.

use engine::loaders::files::block_on;
use engine::pipelines::stable_diffusion::{GenerationRequest, StableDiffusion};

use super::{fixtures, golden_tensor, relative_l2};

const GOLDEN: &str = "image-golden.safetensors";

/// A fixture's run: its own `{name}-run.json` (fixtures made by their own script), else its
/// entry in `pipeline-runs.json`.
fn run_of(name: &str) -> serde_json::Value {
    let read = |file: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(fixtures().join(file)).unwrap()).unwrap()
    };
    let own = format!("{name}-run.json");
    if fixtures().join(&own).exists() {
        read(&own)
    } else {
        read("pipeline-runs.json")[name].clone()
    }
}

/// diffusers' final latents: `pipeline.latents` in the fixture's own golden file, else
/// `{name}.pipeline.latents` in the shared one.
fn golden_latents(name: &str) -> (Vec<usize>, Vec<f32>) {
    if fixtures().join(format!("{name}-run.json")).exists() {
        golden_tensor(&format!("{name}-golden.safetensors"), "pipeline.latents")
    } else {
        golden_tensor(GOLDEN, &format!("{name}.pipeline.latents"))
    }
}

pub fn request(name: &str) -> GenerationRequest {
    let run = &run_of(name);
    GenerationRequest {
        prompt: run["prompt"].as_str().unwrap().into(),
        negative_prompt: run["negative_prompt"].as_str().unwrap_or("").into(),
        steps: run["num_inference_steps"].as_u64().unwrap() as usize,
        guidance: run["guidance_scale"].as_f64().unwrap(),
        width: 32,
        height: 32,
        seed: 0,
        scheduler: None,
        noise: Some(golden_tensor(&format!("{name}-noise.safetensors"), "noise").1),
    }
}

/// Generates `name`'s golden run on `device` in its float type and asserts the final latents
/// within `latents_l2` relative L2 of diffusers' and the picture within `picture_difference`
/// (of 255) mean absolute difference.
pub fn assert_pipeline_within(
    name: &str,
    device: &burn::tensor::Device,
    latents_l2: f64,
    picture_difference: f64,
) {
    let model = block_on(StableDiffusion::load(&super::model(name), None, device)).unwrap();
    let generated = block_on(model.generate(&request(name), |_| true)).unwrap();
    let latents = (generated.latent_shape.to_vec(), generated.latents.clone());
    let error = relative_l2(&latents, &golden_latents(name));
    let expected = image::open(fixtures().join(format!("{name}-golden.png")))
        .unwrap()
        .to_rgb8();
    let difference = generated
        .rgb
        .iter()
        .zip(expected.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / generated.rgb.len() as f64;
    eprintln!(
        "{name}: latents relative L2 {error:e}, picture mean abs difference {difference:.4}/255"
    );
    assert!(
        error <= latents_l2,
        "{name}: latents relative L2 error {error}"
    );
    assert!(
        difference <= picture_difference,
        "{name}: picture differs by {difference}/255 on average"
    );
}
