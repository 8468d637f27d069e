//! f16 end to end on the GPU backend (lavapipe's Vulkan on machines without a GPU: the same WGSL
//! kernels a browser with `shader-f16` runs), against diffusers' f32 goldens.
//!
//! Tolerances are f16's, stated once: final latents within 1e-2 relative L2, the picture within
//! 2/255 mean absolute difference, the avatar's loss within 1e-3 and its gradient within 2e-2
//! relative L2. f16 keeps 11 bits (5e-4 relative per rounding) and the errors compound through
//! the layers; measured on lavapipe (2026-12-02): latents 0.9e-3 to 3.7e-3, pictures within
//! 0.22/255, losses within 1.7e-4, gradients 2.9e-3 to 3.8e-3. Pivotal tuning's LoRA factors
//! keep the gradient's tolerance all together; a single factor is held to 5e-2, since the
//! smallest (self-attention keys) lose most (measured: all together 7.5e-3 and 8.3e-3, worst single
//! factor 1.4e-2 and 3.2e-2).
//!
//! Every test in this binary computes in f16: burn fixes a device's float type once per process.

mod common;

use burn::tensor::DType;
use common::avatar::{assert_avatar_gradients_within_f16, assert_lora_gradients_within_f16};
use common::pipeline::assert_pipeline_within;
use engine::device::{ComputeBackend, Precision, precision_of};
use engine::loaders::files::block_on;
use engine::pipelines::stable_diffusion::StableDiffusion;

fn f16_device() -> burn::tensor::Device {
    let (device, precision) = ComputeBackend::Gpu
        .device_with(Some(Precision::F16))
        .expect("the test GPU (lavapipe) computes in f16");
    assert_eq!(precision, Precision::F16);
    device
}

#[test]
fn f16_is_chosen_by_default_on_a_gpu_that_computes_in_it() {
    let device = f16_device();
    // Asked again without a choice, the device stays as it was set, in f16.
    let (_, chosen) = ComputeBackend::Gpu.device_with(None).unwrap();
    assert_eq!(chosen, Precision::F16);
    assert_eq!(precision_of(&device), Precision::F16);
    // The CPU backend gains nothing from f16: it defaults to f32.
    let cpu = ComputeBackend::Cpu.device();
    assert_eq!(
        Precision::best_for(ComputeBackend::Cpu, &cpu),
        Precision::F32
    );
}

#[test]
fn weights_are_held_in_f16() {
    let model = block_on(StableDiffusion::load(
        &common::model("tiny-sd2"),
        None,
        &f16_device(),
    ))
    .unwrap();
    let weights = &model.text.text_encoder.embeddings.position_embedding.weight;
    assert_eq!(weights.val().dtype(), DType::F16);
    assert_eq!(model.unet.conv_in.weight.val().dtype(), DType::F16);
}

/// burn's flash attention in f16 (f32 accumulators) against the slices (f32 scores and
/// softmax): within f16's rounding of the output.
#[test]
fn flash_attention_in_f16_matches_the_slices() {
    common::attention::assert_flash_matches_slices(&f16_device(), 4e-3);
}

/// Training's attention in f16 (gradients computed in f32, returned in f16) against the slices
/// differentiated in f32 on the same inputs: within f16's rounding (up to 8e-4 measured).
#[test]
fn training_attention_in_f16_has_the_slices_gradients() {
    common::attention::assert_recomputed_gradients_match_slices(&f16_device(), 4e-3);
}

fn assert_f16_pipeline_matches(name: &str) {
    assert_pipeline_within(name, &f16_device(), 1e-2, 2.0);
}

#[test]
fn turbo_like_model_in_f16_matches_diffusers() {
    assert_f16_pipeline_matches("tiny-sd2");
}

#[test]
fn lcm_like_model_in_f16_matches_diffusers() {
    assert_f16_pipeline_matches("tiny-sd1");
}

#[test]
fn sdxs_like_model_with_guidance_in_f16_matches_diffusers() {
    assert_f16_pipeline_matches("tiny-sdxs");
}

#[test]
fn avatar_gradients_through_an_f16_model_match_torch() {
    assert_avatar_gradients_within_f16(f16_device().autodiff(), None);
}

#[test]
fn lora_gradients_through_an_f16_model_match_peft() {
    assert_lora_gradients_within_f16(f16_device().autodiff(), None);
}

/// The story writer's language models in f16 on the GPU (weights dequantised to f16, norms'
/// statistics and softmax in f32) against transformers' f32 logits: within 2e-2 of the largest
/// logit's magnitude (f16's 11 bits through two layers), and the same best next
/// token at every position where transformers' best leads its runner-up by more than that
/// (measured on lavapipe: 0.7e-3 to 5.1e-3 of the scale).
#[test]
fn language_models_in_f16_match_transformers() {
    use engine::models::llama::KvCache;
    use engine::pipelines::text_generation::LanguageModel;
    let fixtures = common::fixtures().join("llm");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures.join("llm-golden.json")).unwrap()).unwrap();
    for name in ["tiny-llama.gguf", "tiny-qwen2"] {
        let (files, gguf) = match name.strip_suffix(".gguf") {
            Some(_) => (engine::loaders::files::Folder(fixtures.clone()), Some(name)),
            None => (engine::loaders::files::Folder(fixtures.join(name)), None),
        };
        let model = block_on(LanguageModel::load(&files, gguf, &f16_device())).unwrap();
        for (number, prompt) in golden[name]["prompts"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let ids: Vec<u32> = prompt["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_u64().unwrap() as u32)
                .collect();
            let mut cache = KvCache::new(&model.model, 64).unwrap();
            let hidden = model.model.forward(&ids, &mut cache).unwrap();
            let (shape, logits) = common::values(model.model.logits(hidden));
            let (_, expected) =
                common::golden_tensor("llm/llm-golden.safetensors", &format!("{name}.{number}"));
            let scale = expected
                .iter()
                .fold(0.0f32, |max, value| max.max(value.abs()));
            let worst = logits
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("{name} prompt {number} in f16: max |Δlogit| {worst:.2e} (scale {scale:.2})");
            assert!(worst <= 2e-2 * scale, "{name}: {worst} against {scale}");
            let vocab = shape[2];
            for (row, wanted) in logits.chunks(vocab).zip(expected.chunks(vocab)) {
                let mut order: Vec<usize> = (0..vocab).collect();
                order.sort_by(|&a, &b| wanted[b].total_cmp(&wanted[a]));
                let best = |values: &[f32]| {
                    (0..vocab)
                        .max_by(|&a, &b| values[a].total_cmp(&values[b]))
                        .unwrap()
                };
                if wanted[order[0]] - wanted[order[1]] > 2e-2 * scale {
                    assert_eq!(best(row), order[0], "{name}: the best next token");
                }
            }
        }
    }
}
