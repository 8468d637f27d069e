//! Half-precision weights held as stored on burn's CPU backend (the browser's fallback), each
//! widened to f32 when a layer reads it: the same results as f32 weights of the same values, in
//! half the memory.

mod common;

use std::path::Path;

use burn::tensor::DType;
use common::avatar::{assert_avatar_gradients_within_f16, assert_lora_gradients_within_f16};
use common::pipeline::request;
use common::{fixtures, relative_l2};
use engine::device::{ComputeBackend, Precision};
use engine::loaders::files::{Folder, block_on};
use engine::loaders::lora::LoraFile;
use engine::models::lora::ScaledLora;
use engine::pipelines::stable_diffusion::{Generated, StableDiffusion};

fn cpu() -> burn::tensor::Device {
    let (device, precision) = ComputeBackend::Cpu.device_with(None).unwrap();
    assert_eq!(precision, Precision::F32);
    device
}

/// A copy of fixture `name` whose only weights are its fp16 files' values written as f32: the
/// weights a loader that widens everything up front would hold.
fn widened_copy(name: &str, out: &Path) {
    let source = fixtures().join(name);
    for entry in walk(&source) {
        let relative = entry.strip_prefix(&source).unwrap();
        let file_name = relative.file_name().unwrap().to_str().unwrap();
        if file_name.ends_with(".safetensors") && !file_name.ends_with(".fp16.safetensors") {
            continue;
        }
        let target = out.join(
            relative
                .to_str()
                .unwrap()
                .replace(".fp16.safetensors", ".safetensors"),
        );
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if file_name.ends_with(".fp16.safetensors") {
            let bytes = std::fs::read(&entry).unwrap();
            let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let widened: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
                .tensors()
                .into_iter()
                .map(|(key, view)| {
                    assert_eq!(view.dtype(), safetensors::Dtype::F16, "{key}");
                    let values: Vec<u8> = view
                        .data()
                        .chunks_exact(2)
                        .flat_map(|b| {
                            half::f16::from_le_bytes([b[0], b[1]])
                                .to_f32()
                                .to_le_bytes()
                        })
                        .collect();
                    (key, view.shape().to_vec(), values)
                })
                .collect();
            let views = widened.iter().map(|(key, shape, values)| {
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    values,
                )
                .unwrap();
                (key.as_str(), view)
            });
            safetensors::serialize_to_file(views, None, &target).unwrap();
        } else {
            std::fs::copy(&entry, &target).unwrap();
        }
    }
}

fn walk(folder: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn generate(model: &StableDiffusion) -> Generated {
    block_on(model.generate(&request("tiny-sd2"), |_| true)).unwrap()
}

#[test]
fn the_cpu_holds_fp16_files_as_stored_and_draws_as_with_f32_weights_of_the_same_values() {
    let device = cpu();
    let held = block_on(StableDiffusion::load(
        &common::model("tiny-sd2"),
        Some("fp16"),
        &device,
    ))
    .unwrap();
    assert_eq!(held.unet.conv_in.weight.val().dtype(), DType::F16);
    let table = &held.text.text_encoder.embeddings.token_table;
    assert_eq!(table.bytes(), table.rows() * table.width() * 2);

    let folder = std::env::temp_dir().join(format!("held-weights-{}", std::process::id()));
    widened_copy("tiny-sd2", &folder);
    let widened = block_on(StableDiffusion::load(
        &Folder(folder.clone()),
        None,
        &device,
    ))
    .unwrap();
    assert_eq!(widened.unet.conv_in.weight.val().dtype(), DType::F32);

    let (held_run, widened_run) = (generate(&held), generate(&widened));
    // Widening is exact and the kernels are the same: the very same numbers.
    assert_eq!(held_run.latents, widened_run.latents);
    assert_eq!(held_run.rgb, widened_run.rgb);
    std::fs::remove_dir_all(folder).unwrap();
}

#[test]
fn a_lora_merges_into_held_weights_and_changes_the_picture() {
    let device = cpu();
    let mut held = block_on(StableDiffusion::load(
        &common::model("tiny-sd2"),
        Some("fp16"),
        &device,
    ))
    .unwrap();
    let plain = generate(&held);
    let path = fixtures().join("loras/avatar-lora-start.safetensors");
    let file = LoraFile::from_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap();
    held.set_loras(&[ScaledLora { file, scale: 1.0 }]).unwrap();
    let adapted = generate(&held);
    let shape = adapted.latent_shape.to_vec();
    let difference = relative_l2(
        &(shape.clone(), adapted.latents.clone()),
        &(shape, plain.latents.clone()),
    );
    assert!(difference > 1e-4, "the LoRA changed nothing ({difference})");
    assert!(adapted.latents.iter().all(|value| value.is_finite()));
}

/// f16's tolerances (tests/half_precision.rs): the fixture's fp16 files are torch's f32 weights
/// rounded, so they differ from the goldens by that rounding, not by the widening.
#[test]
fn avatar_gradients_through_held_fp16_weights_match_torch() {
    assert_avatar_gradients_within_f16(cpu().autodiff(), Some("fp16"));
}

#[test]
fn lora_gradients_through_held_fp16_weights_match_peft() {
    assert_lora_gradients_within_f16(cpu().autodiff(), Some("fp16"));
}
