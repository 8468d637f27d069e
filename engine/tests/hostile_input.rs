//! The hostile-input corpus: files made to break the engine — model folders, embeddings, LoRAs,
//! photos, requests. Each case asserts the message names the file and the problem, that nothing
//! panicked, and that what the parent already had is unchanged: the folder's files, a loaded
//! model's vocabulary and weights, an avatar file the CLI would have overwritten.

mod common;

use std::path::Path;

use common::{device, model_in_memory};
use engine::loaders::files::{InMemory, block_on};
use engine::loaders::lora::LoraFile;
use engine::loaders::textual_inversion::TextualInversion;
use engine::pipelines::stable_diffusion::{GenerationRequest, StableDiffusion, check_model};
use engine::pipelines::text_generation::LanguageModel;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use serde_json::{Value, json};

const UNET_WEIGHTS: &str = "unet/diffusion_pytorch_model.safetensors";

/// The tiny SD 2 folder with f32 weights only, so every case reads the file it tampers with.
fn folder() -> InMemory {
    let mut files = model_in_memory("tiny-sd2");
    files.0.retain(|path, _| !path.contains(".fp16."));
    files
}

/// Both ways the engine meets a folder — the app's check of its small files, and loading it —
/// refuse `files` with a message holding `path` and every fragment, and leave the files as they
/// were. `weights_only`: the small files are fine, so only loading can see the problem.
fn refused(files: InMemory, path: &str, fragments: &[&str], weights_only: bool) {
    let before = files.0.clone();
    let mut messages = Vec::new();
    if !weights_only {
        messages.push(block_on(check_model(&files)).map(|_| ()));
    }
    messages.push(block_on(StableDiffusion::load(&files, None, &device())).map(|_| ()));
    for result in messages {
        let message = result
            .expect_err("the folder should be refused")
            .to_string();
        eprintln!("refused: {message}");
        assert!(message.contains(path), "{message:?} does not name {path}");
        for fragment in fragments {
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        }
    }
    assert!(files.0 == before, "the folder's files changed");
}

fn edit_json(files: &mut InMemory, path: &str, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_slice(&files.0[path]).unwrap();
    edit(&mut value);
    files
        .0
        .insert(path.into(), serde_json::to_vec(&value).unwrap());
}

fn config_case(path: &str, edit: impl FnOnce(&mut Value), fragments: &[&str]) {
    let mut files = folder();
    edit_json(&mut files, path, edit);
    refused(files, path, fragments, false);
}

/// The UNet's weights with the header replaced by `header` (the data section kept).
fn unet_with_header(header: &[u8]) -> InMemory {
    let mut files = folder();
    let bytes = &files.0[UNET_WEIGHTS];
    let old_length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut rewritten = (header.len() as u64).to_le_bytes().to_vec();
    rewritten.extend(header);
    rewritten.extend(&bytes[8 + old_length..]);
    files.0.insert(UNET_WEIGHTS.into(), rewritten);
    files
}

/// The UNet's header as JSON, edited by `edit`.
fn unet_header_edited(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> InMemory {
    let bytes = &folder().0[UNET_WEIGHTS];
    let length = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Map<String, Value> =
        serde_json::from_slice(&bytes[8..8 + length]).unwrap();
    edit(&mut header);
    unet_with_header(&serde_json::to_vec(&header).unwrap())
}

/// The name of a tensor in the UNet's file.
fn first_tensor(header: &serde_json::Map<String, Value>) -> String {
    header
        .keys()
        .find(|name| name.as_str() != "__metadata__" && name.ends_with("conv_in.weight"))
        .unwrap()
        .clone()
}

// ---- Safetensors headers -----------------------------------------------------------------

#[test]
fn a_header_length_of_two_to_the_sixty_is_refused() {
    let mut files = folder();
    files.0.get_mut(UNET_WEIGHTS).unwrap()[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    refused(
        files,
        UNET_WEIGHTS,
        &["header length 1152921504606846976"],
        true,
    );
}

#[test]
fn a_header_longer_than_its_file_is_refused() {
    let mut files = folder();
    let size = files.0[UNET_WEIGHTS].len() as u64;
    files.0.get_mut(UNET_WEIGHTS).unwrap()[..8].copy_from_slice(&size.to_le_bytes());
    refused(files, UNET_WEIGHTS, &["is not a safetensors file"], true);
}

#[test]
fn a_zero_byte_weights_file_is_refused() {
    let mut files = folder();
    files.0.insert(UNET_WEIGHTS.into(), Vec::new());
    refused(files, UNET_WEIGHTS, &["0 bytes"], true);
}

#[test]
fn a_truncated_weights_file_is_refused() {
    let mut files = folder();
    let bytes = files.0.get_mut(UNET_WEIGHTS).unwrap();
    bytes.truncate(bytes.len() / 2);
    refused(files, UNET_WEIGHTS, &["incomplete"], true);
}

#[test]
fn a_header_that_is_not_json_is_refused() {
    let files = unet_with_header(&[0xff; 64]);
    refused(files, UNET_WEIGHTS, &["invalid safetensors header"], true);
}

#[test]
fn offsets_past_the_end_of_the_file_are_refused() {
    let files = unet_header_edited(|header| {
        let name = first_tensor(header);
        let end = header[&name]["data_offsets"][1].as_u64().unwrap();
        header[&name]["data_offsets"] = json!([end, end + (1u64 << 40)]);
    });
    refused(files, UNET_WEIGHTS, &["invalid safetensors header"], true);
}

#[test]
fn a_shape_that_disagrees_with_its_bytes_is_refused() {
    let files = unet_header_edited(|header| {
        let name = first_tensor(header);
        header[&name]["shape"] = json!([1000, 1000]);
    });
    refused(files, UNET_WEIGHTS, &["invalid safetensors header"], true);
}

#[test]
fn a_shape_whose_size_overflows_is_refused() {
    let files = unet_header_edited(|header| {
        let name = first_tensor(header);
        header[&name]["shape"] = json!([1u64 << 62, 1u64 << 62, 16]);
    });
    refused(files, UNET_WEIGHTS, &["invalid safetensors header"], true);
}

#[test]
fn integers_where_floats_belong_are_refused() {
    let mut name = String::new();
    let files = unet_header_edited(|header| {
        name = first_tensor(header);
        header[&name]["dtype"] = json!("I32");
    });
    refused(files, UNET_WEIGHTS, &[name.as_str(), "I32"], true);
}

#[test]
fn a_weight_of_the_wrong_shape_is_refused_with_both_shapes() {
    let mut name = String::new();
    let files = unet_header_edited(|header| {
        name = first_tensor(header);
        let shape = header[&name]["shape"].clone();
        let dims: Vec<u64> = shape
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        // Same number of values, another arrangement.
        header[&name]["shape"] = json!([dims[1], dims[0], dims[2], dims[3]]);
    });
    refused(files, UNET_WEIGHTS, &[name.as_str()], true);
}

// ---- Component configurations --------------------------------------------------------------

#[test]
fn a_unet_asking_for_a_billion_channels_is_refused_before_anything_is_allocated() {
    config_case(
        "unet/config.json",
        |config| config["block_out_channels"] = json!([1_000_000_000, 16]),
        &["block_out_channels", "1000000000"],
    );
}

#[test]
fn heads_that_do_not_divide_the_channels_are_refused() {
    config_case(
        "unet/config.json",
        |config| config["attention_head_dim"] = json!([3, 4]),
        &["do not split into 3 heads"],
    );
}

#[test]
fn zero_norm_groups_are_refused() {
    config_case(
        "unet/config.json",
        |config| config["norm_num_groups"] = json!(0),
        &["norm_num_groups is 0"],
    );
}

#[test]
fn a_negative_count_is_refused() {
    config_case(
        "unet/config.json",
        |config| config["layers_per_block"] = json!(-1),
        &["invalid value: integer `-1`"],
    );
}

#[test]
fn zero_layers_per_block_are_refused() {
    config_case(
        "unet/config.json",
        |config| config["layers_per_block"] = json!(0),
        &["layers_per_block is 0"],
    );
}

#[test]
fn block_lists_of_different_lengths_are_refused() {
    config_case(
        "unet/config.json",
        |config| config["down_block_types"] = json!(["CrossAttnDownBlock2D"]),
        &["differ in length"],
    );
}

#[test]
fn an_unknown_block_type_is_refused() {
    config_case(
        "unet/config.json",
        |config| config["down_block_types"][0] = json!("CrossAttnDownBlock3D"),
        &["CrossAttnDownBlock3D", "not supported"],
    );
}

#[test]
fn a_text_encoder_with_a_vocabulary_of_a_trillion_is_refused() {
    config_case(
        "text_encoder/config.json",
        |config| config["vocab_size"] = json!(1_000_000_000_000u64),
        &["vocab_size is 1000000000000"],
    );
}

#[test]
fn text_encoder_heads_that_do_not_divide_its_width_are_refused() {
    config_case(
        "text_encoder/config.json",
        |config| config["num_attention_heads"] = json!(5),
        &["not a multiple of num_attention_heads 5"],
    );
}

#[test]
fn a_text_encoder_with_no_layers_is_refused() {
    config_case(
        "text_encoder/config.json",
        |config| config["num_hidden_layers"] = json!(0),
        &["num_hidden_layers is 0"],
    );
}

#[test]
fn a_text_encoder_too_short_for_a_prompt_is_refused() {
    config_case(
        "text_encoder/config.json",
        |config| config["max_position_embeddings"] = json!(10),
        &["max_position_embeddings is 10"],
    );
}

#[test]
fn a_vae_asking_for_a_billion_channels_is_refused() {
    config_case(
        "vae/config.json",
        |config| config["block_out_channels"] = json!([8, 1_000_000_000]),
        &["block_out_channels", "1000000000"],
    );
}

#[test]
fn a_vae_with_zero_norm_groups_is_refused() {
    config_case(
        "vae/config.json",
        |config| config["norm_num_groups"] = json!(0),
        &["norm_num_groups is 0"],
    );
}

#[test]
fn a_vae_with_no_latent_channels_is_refused() {
    config_case(
        "vae/config.json",
        |config| config["latent_channels"] = json!(0),
        &["latent_channels is 0"],
    );
}

#[test]
fn a_tiny_autoencoder_with_no_channels_is_refused() {
    let mut files = folder();
    files.0.retain(|path, _| !path.starts_with("vae/"));
    let taesd = model_in_memory("tiny-sdxs");
    for (path, bytes) in taesd.0.iter().filter(|(path, _)| path.starts_with("vae/")) {
        files.0.insert(path.clone(), bytes.clone());
    }
    files.0.retain(|path, _| !path.contains(".fp16."));
    edit_json(&mut files, "vae/config.json", |config| {
        config["_class_name"] = json!("AutoencoderTiny");
        config["encoder_block_out_channels"] = json!([]);
    });
    refused(
        files,
        "vae/config.json",
        &["encoder_block_out_channels"],
        false,
    );
}

#[test]
fn a_scheduler_with_no_training_timesteps_is_refused() {
    config_case(
        "scheduler/scheduler_config.json",
        |config| config["num_train_timesteps"] = json!(0),
        &["num_train_timesteps is 0"],
    );
}

#[test]
fn betas_the_wrong_way_round_are_refused() {
    config_case(
        "scheduler/scheduler_config.json",
        |config| {
            config["beta_start"] = json!(0.5);
            config["beta_end"] = json!(0.1);
        },
        &["beta_start 0.5 and beta_end 0.1"],
    );
}

#[test]
fn a_scheduler_the_engine_lacks_is_refused_before_any_weights_are_read() {
    let mut files = folder();
    let path = "scheduler/scheduler_config.json";
    edit_json(&mut files, path, |config| {
        config["_class_name"] = json!("DPMSolverMultistepScheduler")
    });
    // The check needs none of the weights: it is what runs before a download.
    files.0.retain(|path, _| !path.ends_with(".safetensors"));
    let message = block_on(check_model(&files)).unwrap_err().to_string();
    assert!(
        message.contains(path) && message.contains("DPMSolverMultistepScheduler"),
        "{message}"
    );
}

#[test]
fn a_config_that_is_not_json_is_refused() {
    let mut files = folder();
    files.0.insert(
        "unet/config.json".into(),
        b"{\"block_out_channels\": [8,".to_vec(),
    );
    refused(files, "unet/config.json", &["is not valid JSON"], false);
}

#[test]
fn a_config_file_of_a_hundred_megabytes_is_not_read() {
    let mut files = folder();
    files
        .0
        .insert("unet/config.json".into(), vec![b' '; 100 << 20]);
    refused(files, "unet/config.json", &["far too large"], false);
}

#[test]
fn a_pipeline_of_another_architecture_is_refused() {
    config_case(
        "model_index.json",
        |index| index["unet"] = json!(["diffusers", "SD3Transformer2DModel"]),
        &["SD3Transformer2DModel"],
    );
}

#[test]
fn a_vocabulary_that_is_not_a_word_list_is_refused() {
    let mut files = folder();
    files
        .0
        .insert("tokenizer/vocab.json".into(), b"[1, 2, 3]".to_vec());
    refused(files, "tokenizer/vocab.json", &[], false);
}

#[test]
fn a_vocabulary_without_its_end_token_is_refused() {
    let mut files = folder();
    edit_json(&mut files, "tokenizer/vocab.json", |vocab| {
        vocab.as_object_mut().unwrap().remove("<|endoftext|>");
    });
    refused(
        files,
        "tokenizer",
        &["<|endoftext|>", "not in the vocabulary"],
        false,
    );
}

#[test]
fn merges_that_are_not_merges_are_refused() {
    let mut files = folder();
    files.0.insert(
        "tokenizer/merges.txt".into(),
        b"#version: 0.2\nonlyoneword\n".to_vec(),
    );
    refused(files, "merges.txt", &[], false);
}

#[test]
fn a_tokenizer_json_that_is_not_one_is_refused() {
    let mut files = folder();
    files.0.insert(
        "tokenizer/tokenizer.json".into(),
        b"{\"model\": 42}".to_vec(),
    );
    refused(files, "tokenizer/tokenizer.json", &[], false);
}

// ---- Embeddings and LoRAs, offered to a loaded model --------------------------------------

fn loaded() -> StableDiffusion {
    block_on(StableDiffusion::load(
        &common::model("tiny-sd2"),
        None,
        &device(),
    ))
    .unwrap()
}

fn one_tensor_file(name: &str, dtype: Dtype, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let view = TensorView::new(dtype, shape.to_vec(), data).unwrap();
    safetensors::serialize([(name, view)], None).unwrap()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// The embedding is refused with `fragment`, and the model's vocabulary is as it was.
fn embedding_refused(bytes: &[u8], fragment: &str) {
    let mut model = loaded();
    let vocabulary = model.text.tokenizer.vocab_size();
    let rows = model.text.text_encoder.vocab_rows();
    let path = Path::new("/downloads/kid.safetensors");
    let message = TextualInversion::from_safetensors(bytes, path)
        .and_then(|embedding| model.add_embedding(&embedding, path))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("kid.safetensors") && message.contains(fragment),
        "{message}"
    );
    assert_eq!(model.text.tokenizer.vocab_size(), vocabulary);
    assert_eq!(model.text.text_encoder.vocab_rows(), rows);
}

#[test]
fn an_embedding_holding_nan_is_refused() {
    let mut values = vec![0.1f32; 16];
    values[3] = f32::NAN;
    embedding_refused(
        &one_tensor_file("<kid>", Dtype::F32, &[1, 16], &f32_bytes(&values)),
        "holds NaN where its numbers should be",
    );
}

#[test]
fn an_embedding_holding_infinity_is_refused() {
    let mut bytes = vec![0u8; 32];
    bytes[4..6].copy_from_slice(&0x7c00u16.to_le_bytes()); // f16 +∞
    embedding_refused(
        &one_tensor_file("<kid>", Dtype::F16, &[1, 16], &bytes),
        "inf",
    );
}

#[test]
fn a_zero_byte_embedding_is_refused() {
    embedding_refused(&[], "is not an embedding file: it is cut short");
}

#[test]
fn a_truncated_embedding_is_refused() {
    let whole = one_tensor_file("<kid>", Dtype::F32, &[1, 16], &f32_bytes(&[0.1; 16]));
    embedding_refused(
        &whole[..whole.len() - 7],
        "is not an embedding file: it is cut short",
    );
}

#[test]
fn an_embedding_of_a_hundred_vectors_is_refused() {
    let values = vec![0.1f32; 100 * 16];
    embedding_refused(
        &one_tensor_file("<kid>", Dtype::F32, &[100, 16], &f32_bytes(&values)),
        "100 vectors",
    );
}

#[test]
fn an_embedding_with_a_header_length_of_two_to_the_sixty_is_refused() {
    let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
    bytes.extend(b"{}");
    embedding_refused(&bytes, "is not an embedding file: it is cut short");
}

#[test]
fn an_embedding_for_a_token_with_spaces_is_refused() {
    embedding_refused(
        &one_tensor_file("my kid", Dtype::F32, &[1, 16], &f32_bytes(&[0.1; 16])),
        "one word",
    );
}

/// The LoRA is refused with `fragment`; the model draws with no LoRA as before.
fn lora_refused(bytes: &[u8], fragment: &str) {
    let model = loaded();
    let path = Path::new("/downloads/style.safetensors");
    let message = LoraFile::from_safetensors(bytes, path)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("style.safetensors") && message.contains(fragment),
        "{message}"
    );
    assert!(model.adapted_unet.is_none());
}

#[test]
fn a_lora_holding_nan_is_refused() {
    let down =
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight";
    let mut values = vec![0.1f32; 8];
    values[0] = f32::NAN;
    lora_refused(
        &one_tensor_file(down, Dtype::F32, &[1, 8], &f32_bytes(&values)),
        "NaN",
    );
}

#[test]
fn a_lora_with_an_unknown_key_is_refused() {
    lora_refused(
        &one_tensor_file(
            "model.diffusion_model.foo",
            Dtype::F32,
            &[1, 8],
            &f32_bytes(&[0.1; 8]),
        ),
        "model.diffusion_model.foo",
    );
}

#[test]
fn a_zero_byte_lora_is_refused() {
    lora_refused(&[], "is not a safetensors file");
}

// ---- Photos -------------------------------------------------------------------------------

fn photo_refused(bytes: &[u8], fragment: &str) {
    let message = engine::photos::decode(bytes, Path::new("beach.jpg"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("beach.jpg") && message.contains(fragment),
        "{message}"
    );
}

#[test]
fn a_png_claiming_sixty_thousand_pixels_square_is_refused() {
    photo_refused(
        &engine::photos::png_header_claiming(60_000, 60_000),
        "60000 × 60000",
    );
}

#[test]
fn a_zero_byte_photo_is_refused() {
    photo_refused(&[], "is not a picture");
}

#[test]
fn a_truncated_jpeg_is_refused() {
    let jpeg = std::fs::read(common::fixtures().join("photos/toddler-1.jpg")).unwrap();
    photo_refused(&jpeg[..jpeg.len() / 3], "is cut off");
}

#[test]
fn a_jpeg_claiming_far_more_pixels_than_its_data_can_hold_is_refused() {
    let mut jpeg = std::fs::read(common::fixtures().join("photos/toddler-1.jpg")).unwrap();
    // The frame header's height and width, as a fuzzer found them: 2.7 kB for 54 megapixels.
    let frame = jpeg
        .windows(2)
        .position(|pair| pair == [0xFF, 0xC0])
        .unwrap();
    jpeg[frame + 5..frame + 9].copy_from_slice(&[0x41, 0xFF, 0x0C, 0x80]);
    photo_refused(
        &jpeg,
        "is damaged (it holds too little to draw its 3200 × 16895 pixels)",
    );
}

#[test]
fn the_most_compressible_real_jpeg_is_not_taken_for_a_damaged_one() {
    // One flat colour: the fewest bytes a block can take from a real encoder.
    let flat = image::RgbImage::from_pixel(2000, 1500, image::Rgb([200, 180, 160]));
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 50)
        .encode_image(&flat)
        .unwrap();
    assert!(jpeg.len() < 200_000, "{} bytes", jpeg.len());
    let read = engine::photos::decode(&jpeg, Path::new("flat.jpg")).unwrap();
    assert_eq!((read.width(), read.height()), (2000, 1500));
}

#[test]
fn a_truncated_webp_is_refused() {
    let webp = std::fs::read(common::fixtures().join("photos/toddler-3.webp")).unwrap();
    photo_refused(&webp[..webp.len() / 2], "could not be read");
}

#[test]
fn a_text_file_named_like_a_photo_is_refused() {
    photo_refused(b"these are my notes about the beach", "is not a picture");
}

#[test]
fn a_photo_with_garbage_exif_still_reads_upright() {
    let jpeg = std::fs::read(common::fixtures().join("photos/toddler-1.jpg")).unwrap();
    // An APP1 segment right after the start marker, "Exif" then noise.
    let mut noise = b"Exif\0\0MM\0\x2a\xff\xff\xff\xff".to_vec();
    noise.extend([0x5a; 40]);
    let mut damaged = jpeg[..2].to_vec();
    damaged.extend([0xff, 0xe1]);
    damaged.extend(((noise.len() + 2) as u16).to_be_bytes());
    damaged.extend(noise);
    damaged.extend(&jpeg[2..]);
    let plain = engine::photos::decode(&jpeg, Path::new("a.jpg")).unwrap();
    let read = engine::photos::decode(&damaged, Path::new("b.jpg")).unwrap();
    assert_eq!(
        (read.width(), read.height()),
        (plain.width(), plain.height())
    );
}

// ---- Requests -----------------------------------------------------------------------------

fn request() -> GenerationRequest {
    GenerationRequest {
        prompt: "a toddler on a beach".into(),
        negative_prompt: String::new(),
        steps: 1,
        guidance: 0.0,
        width: 64,
        height: 64,
        seed: 7,
        scheduler: None,
        noise: None,
    }
}

/// The request is refused with `fragment`; the same model then draws a good request as before.
fn request_refused(model: &StableDiffusion, bad: GenerationRequest, fragment: &str) {
    let message = block_on(model.generate(&bad, |_| true))
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains(fragment), "{message}");
}

#[test]
fn bad_requests_are_refused_and_the_model_still_draws() {
    let model = loaded();
    let good = block_on(model.generate(&request(), |_| true)).unwrap().rgb;
    let cases: [(GenerationRequest, &str); 6] = [
        (
            GenerationRequest {
                width: 60,
                ..request()
            },
            "multiples of 8",
        ),
        (
            GenerationRequest {
                width: 1 << 20,
                ..request()
            },
            "1048576×64",
        ),
        (
            GenerationRequest {
                height: 0,
                ..request()
            },
            "64×0",
        ),
        (
            GenerationRequest {
                steps: 0,
                ..request()
            },
            "at least one inference step",
        ),
        (
            GenerationRequest {
                steps: 1_000_000,
                ..request()
            },
            "1000000 inference steps",
        ),
        (
            GenerationRequest {
                guidance: f64::NAN,
                ..request()
            },
            "guidance",
        ),
    ];
    for (bad, fragment) in cases {
        request_refused(&model, bad, fragment);
    }
    let again = block_on(model.generate(&request(), |_| true)).unwrap().rgb;
    assert!(
        again == good,
        "the model drew differently after refusing bad requests"
    );
}

#[test]
fn wrong_noise_for_the_size_is_refused() {
    let model = loaded();
    let bad = GenerationRequest {
        noise: Some(vec![0.0; 10]),
        ..request()
    };
    request_refused(&model, bad, "the noise has 10 values");
}

// ---- The command line keeps what it would have replaced -------------------------------------

#[test]
fn training_with_bad_photos_leaves_the_existing_avatar_file_alone() {
    let scratch = std::env::temp_dir().join(format!("hostile-cli-{}", std::process::id()));
    let photos = scratch.join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("one.jpg"), b"not a photo").unwrap();
    std::fs::write(
        photos.join("two.png"),
        engine::photos::png_header_claiming(60_000, 60_000),
    )
    .unwrap();
    std::fs::write(photos.join("three.webp"), []).unwrap();
    let avatar = scratch.join("mia.safetensors");
    let existing = std::fs::read(common::fixtures().join("embeddings/mia.safetensors")).unwrap();
    std::fs::write(&avatar, &existing).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_toddler"))
        .args(["train-avatar", "--model"])
        .arg(common::fixtures().join("tiny-sd2"))
        .arg("--photos")
        .arg(&photos)
        .args([
            "--token",
            "<mia>",
            "--steps",
            "2",
            "--resolution",
            "64",
            "--out",
        ])
        .arg(&avatar)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("one.jpg") || stderr.contains("two.png") || stderr.contains("three.webp"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(&avatar).unwrap(),
        existing,
        "the avatar file changed"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}

#[test]
fn a_config_far_larger_than_its_weights_is_refused_without_building_it() {
    // Within every bound, but its two blocks alone would need about 40 GB: the weights must
    // match the config tensor by tensor, and the mismatch is found before any of that exists.
    let started = std::time::Instant::now();
    let mut files = folder();
    edit_json(&mut files, "unet/config.json", |config| {
        config["block_out_channels"] = json!([16_384, 16_384]);
        config["attention_head_dim"] = json!([8, 8]);
    });
    refused(files, UNET_WEIGHTS, &["shape"], true);
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}

// ---- Language models: GGUF files and transformers folders ---------------------------------

const GGUF: &str = "tiny-llama.gguf";

/// The tiny Llama GGUF, its bytes edited by `edit`, in a folder of its own.
fn gguf_edited(edit: impl FnOnce(&mut Vec<u8>)) -> InMemory {
    let mut bytes = std::fs::read(common::fixtures().join("llm").join(GGUF)).unwrap();
    edit(&mut bytes);
    InMemory([(GGUF.to_owned(), bytes)].into_iter().collect())
}

/// Where `needle` (a key or tensor name, as the header spells it) ends in `bytes`.
fn after(bytes: &[u8], needle: &str) -> usize {
    bytes
        .windows(needle.len())
        .position(|window| window == needle.as_bytes())
        .unwrap_or_else(|| panic!("{needle} in the header"))
        + needle.len()
}

/// Loading refuses `files` with a message naming the file and every fragment; the files stay.
fn language_model_refused(files: InMemory, gguf: Option<&str>, fragments: &[&str]) {
    let before = files.0.clone();
    let message = block_on(LanguageModel::load(&files, gguf, &device()))
        .expect_err("the model should be refused")
        .to_string();
    eprintln!("refused: {message}");
    if let Some(name) = gguf {
        assert!(message.contains(name), "{message:?} does not name {name}");
    }
    for fragment in fragments {
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
    assert!(files.0 == before, "the files changed");
}

#[test]
fn a_gguf_cut_short_is_refused_as_an_incomplete_download() {
    let files = gguf_edited(|bytes| bytes.truncate(bytes.len() / 2));
    language_model_refused(
        files,
        Some(GGUF),
        &["past the end of the file", "incomplete download"],
    );
    let files = gguf_edited(|bytes| bytes.truncate(100));
    language_model_refused(files, Some(GGUF), &["ends inside its header"]);
}

#[test]
fn a_gguf_claiming_two_to_the_sixty_four_tensors_is_refused_before_allocating() {
    let files = gguf_edited(|bytes| bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes()));
    language_model_refused(files, Some(GGUF), &["tensors (at most 65536)"]);
}

#[test]
fn a_vocabulary_longer_than_the_file_is_refused_before_allocating() {
    // After the key: the value's type (array), the elements' type (string), then the count.
    let files = gguf_edited(|bytes| {
        let count = after(bytes, "tokenizer.ggml.tokens") + 8;
        bytes[count..count + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    });
    language_model_refused(
        files,
        Some(GGUF),
        &["tokenizer.ggml.tokens", "more than the file can"],
    );
}

#[test]
fn a_quantisation_the_engine_does_not_read_is_named() {
    // After the name: rank (u32), two dimensions (u64), then the type: 13 is Q5_K.
    let files = gguf_edited(|bytes| {
        let kind = after(bytes, "blk.0.attn_q.weight") + 4 + 16;
        bytes[kind..kind + 4].copy_from_slice(&13u32.to_le_bytes());
    });
    language_model_refused(files, Some(GGUF), &["blk.0.attn_q.weight", "Q5_K", "Q4_K"]);
}

#[test]
fn an_architecture_the_writer_does_not_run_is_refused_in_plain_words() {
    let files = gguf_edited(|bytes| {
        let value = after(bytes, "general.architecture") + 4 + 8;
        bytes[value..value + 5].copy_from_slice(b"gemma");
    });
    language_model_refused(
        files,
        Some(GGUF),
        &["`gemma` model", "Llama (SmolLM2) and Qwen2"],
    );
}

#[test]
fn metadata_that_disagrees_with_the_tensors_is_refused_naming_the_tensor() {
    // Eight heads of 64 make a 512-wide query projection; the file holds 256 rows.
    let files = gguf_edited(|bytes| {
        let value = after(bytes, "llama.attention.head_count") + 4;
        bytes[value..value + 4].copy_from_slice(&8u32.to_le_bytes());
    });
    language_model_refused(
        files,
        Some(GGUF),
        &["blk.0.attn_q.weight", "needs [512, 256]"],
    );
}

#[test]
fn a_transformers_folder_of_another_family_or_with_too_many_layers_is_refused() {
    let folder = || model_in_memory("llm/tiny-qwen2");
    let mut files = folder();
    edit_json(&mut files, "config.json", |config| {
        config["model_type"] = json!("mistral")
    });
    language_model_refused(files, None, &["config.json", "`mistral` model"]);
    let mut files = folder();
    edit_json(&mut files, "config.json", |config| {
        config["num_hidden_layers"] = json!(1_000_000)
    });
    language_model_refused(files, None, &["num_hidden_layers is 1000000"]);
    let mut files = folder();
    files
        .0
        .insert("tokenizer.json".into(), b"{\"model\": 3}".to_vec());
    language_model_refused(files, None, &["tokenizer.json", "not a tokenizer"]);
}
