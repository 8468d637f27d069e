//! LoRA files draw what diffusers' `load_lora_weights` draws: the kohya / A1111 format on
//! tiny-sd1 (attention, feed-forward, 1×1-convolution projections, text encoder attention and
//! MLP), diffusers' peft format (alpha and an alpha pattern in `lora_adapter_metadata`) and its
//! older names on tiny-sd2, each at two scales, and two files at once with their own scales
//! (golden latents from models/make_lora_fixtures.py, diffusers 0.42.1 + peft 0.21.2).

mod common;

use common::pipeline::request;
use common::{device, fixtures, golden_tensor, model, relative_l2};
use engine::loaders::files::block_on;
use engine::loaders::lora::LoraFile;
use engine::models::lora::ScaledLora;
use engine::pipelines::stable_diffusion::StableDiffusion;

const GOLDEN: &str = "loras/lora-golden.safetensors";
/// As the pipelines without LoRA (`pipeline_parity.rs`).
const LATENTS_L2: f64 = 1e-3;

fn lora(name: &str, scale: f64) -> ScaledLora {
    let path = fixtures().join("loras").join(format!("{name}.safetensors"));
    let file = LoraFile::from_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap();
    ScaledLora { file, scale }
}

/// Draws `model_name`'s golden run with `loras` and returns the latents' relative error.
fn error_with(model_name: &str, loras: &[ScaledLora], golden: &str) -> f64 {
    let mut model = block_on(StableDiffusion::load(&model(model_name), None, &device())).unwrap();
    model.set_loras(loras).unwrap();
    let generated = block_on(model.generate(&request(model_name), |_| true)).unwrap();
    let error = relative_l2(
        &(generated.latent_shape.to_vec(), generated.latents),
        &golden_tensor(GOLDEN, golden),
    );
    eprintln!("{golden}: latents relative L2 {error:e}");
    error
}

#[test]
fn kohya_files_match_diffusers_at_two_scales() {
    for scale in ["1.0", "0.5"] {
        let error = error_with(
            "tiny-sd1",
            &[lora("tiny-sd1-kohya", scale.parse().unwrap())],
            &format!("tiny-sd1-kohya@{scale}"),
        );
        assert!(error <= LATENTS_L2, "kohya at {scale}: {error}");
    }
}

#[test]
fn diffusers_files_match_diffusers_at_two_scales() {
    for name in ["tiny-sd2-peft", "tiny-sd2-old"] {
        for scale in ["1.0", "0.5"] {
            let error = error_with(
                "tiny-sd2",
                &[lora(name, scale.parse().unwrap())],
                &format!("{name}@{scale}"),
            );
            assert!(error <= LATENTS_L2, "{name} at {scale}: {error}");
        }
    }
}

#[test]
fn two_files_at_once_each_with_its_scale() {
    let error = error_with(
        "tiny-sd2",
        &[lora("tiny-sd2-peft", 0.7), lora("tiny-sd2-old", 0.4)],
        "tiny-sd2-peft@0.7+tiny-sd2-old@0.4",
    );
    assert!(error <= LATENTS_L2, "{error}");
}

#[test]
fn removing_the_loras_draws_the_model_as_loaded() {
    let mut model = block_on(StableDiffusion::load(&model("tiny-sd2"), None, &device())).unwrap();
    let plain = block_on(model.generate(&request("tiny-sd2"), |_| true)).unwrap();
    model.set_loras(&[lora("tiny-sd2-peft", 1.0)]).unwrap();
    let adapted = block_on(model.generate(&request("tiny-sd2"), |_| true)).unwrap();
    model.set_loras(&[]).unwrap();
    let again = block_on(model.generate(&request("tiny-sd2"), |_| true)).unwrap();
    assert_ne!(plain.latents, adapted.latents);
    assert_eq!(
        plain.latents, again.latents,
        "the base weights are untouched"
    );
}

#[test]
fn a_lora_for_another_model_is_refused_and_changes_nothing() {
    let mut model = block_on(StableDiffusion::load(&model("tiny-sd2"), None, &device())).unwrap();
    model.set_loras(&[lora("tiny-sd2-peft", 1.0)]).unwrap();
    let before = block_on(model.generate(&request("tiny-sd2"), |_| true)).unwrap();
    let error = model
        .set_loras(&[lora("tiny-sd1-kohya", 1.0)])
        .unwrap_err()
        .to_string();
    assert!(error.contains("tiny-sd1-kohya.safetensors"), "{error}");
    assert!(error.contains("made for a different model"), "{error}");
    let after = block_on(model.generate(&request("tiny-sd2"), |_| true)).unwrap();
    assert_eq!(before.latents, after.latents);
}

/// An avatar trained by this engine with its LoRA (`toddler train-avatar --lora-rank 4`, files
/// committed) draws in diffusers (`load_textual_inversion` + `load_lora_weights`,
/// models/check_lora_diffusers.py) what it draws here.
#[test]
fn an_avatar_trained_here_draws_in_diffusers_as_here() {
    let mut model = block_on(StableDiffusion::load(&model("tiny-sd2"), None, &device())).unwrap();
    let avatar = fixtures().join("loras/kid.safetensors");
    let embedding = engine::loaders::textual_inversion::TextualInversion::from_safetensors(
        &std::fs::read(&avatar).unwrap(),
        &avatar,
    )
    .unwrap();
    model.add_embedding(&embedding, &avatar).unwrap();
    model.set_loras(&[lora("kid.lora", 1.0)]).unwrap();
    let mut request = request("tiny-sd2");
    request.prompt = "an illustration of <kid> at the beach".into();
    let generated = block_on(model.generate(&request, |_| true)).unwrap();
    let error = relative_l2(
        &(generated.latent_shape.to_vec(), generated.latents),
        &golden_tensor("loras/kid-diffusers.safetensors", "latents"),
    );
    eprintln!("trained avatar + LoRA: latents relative L2 {error:e}");
    assert!(error <= LATENTS_L2, "{error}");
}
