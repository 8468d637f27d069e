//! The text side is the same function as transformers + diffusers: token ids for every golden
//! prompt, hidden states within 1e-4, textual inversion as `load_textual_inversion` does it.
//! Goldens: models/make_text_fixtures.py.

mod common;

use common::{device, golden_json, golden_tensor, max_abs_diff, model, values};
use engine::loaders::files::block_on;
use engine::loaders::textual_inversion::TextualInversion;
use engine::models::clip::ClipTokenizer;
use engine::pipelines::prompt::PromptEncoder;

const TOLERANCE: f32 = 1e-4;

fn prompts() -> Vec<String> {
    golden_json()["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

fn golden_ids(model_name: &str) -> Vec<Vec<u32>> {
    serde_json::from_value(golden_json()["ids"][model_name].clone()).unwrap()
}

fn assert_ids_match(model_name: &str) {
    assert_folder_ids_match(model_name, model_name);
}

fn assert_folder_ids_match(folder: &str, model_name: &str) {
    let tokenizer = block_on(ClipTokenizer::from_model(&model(folder))).unwrap();
    let prompts = prompts();
    assert!(
        prompts.len() >= 50,
        "the golden set has {} prompts",
        prompts.len()
    );
    let mismatches: Vec<String> = prompts
        .iter()
        .zip(golden_ids(model_name))
        .filter_map(|(prompt, expected)| {
            let actual = tokenizer.encode(prompt).unwrap();
            (actual != expected).then(|| {
                format!("{prompt:?}\n  ours:         {actual:?}\n  transformers: {expected:?}")
            })
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} prompts differ:\n{}",
        mismatches.len(),
        prompts.len(),
        mismatches.join("\n")
    );
}

#[test]
fn tokenizer_uses_the_real_clip_vocabulary() {
    let tokenizer = block_on(ClipTokenizer::from_model(&model("tiny-sd2"))).unwrap();
    let ids = tokenizer.encode("a photo of a cat").unwrap();
    assert_eq!(&ids[..7], &[49406, 320, 1125, 539, 320, 2368, 49407]);
    assert_eq!(ids.len(), 77);
    assert_eq!(tokenizer.vocab_size(), 49408);
}

#[test]
fn tokenizer_matches_transformers_sd2_pads_with_bang() {
    assert_ids_match("tiny-sd2");
}

#[test]
fn tokenizer_matches_transformers_sd1_pads_with_end_of_text() {
    assert_ids_match("tiny-sd1");
}

#[test]
fn tokenizer_json_matches_transformers() {
    assert_folder_ids_match("tokenizer-json", "tiny-sd2");
}

fn assert_hidden_states_match(model_name: &str, variant: Option<&str>, golden_name: &str) {
    let encoder = block_on(PromptEncoder::load(&model(model_name), variant, &device())).unwrap();
    let prompts = prompts();
    let indices: Vec<usize> =
        serde_json::from_value(golden_json()["hidden_state_prompts"].clone()).unwrap();
    let selected: Vec<&str> = indices
        .iter()
        .map(|&index| prompts[index].as_str())
        .collect();
    let actual = values(encoder.encode(&selected).unwrap());
    let expected = golden_tensor("text-golden.safetensors", golden_name);
    let error = max_abs_diff(&actual, &expected);
    eprintln!("{golden_name}: max abs error {error:e}");
    assert!(
        error <= TOLERANCE,
        "{golden_name}: max abs error {error} > {TOLERANCE}"
    );
}

#[test]
fn text_encoder_matches_transformers_gelu_f32() {
    assert_hidden_states_match("tiny-sd2", None, "tiny-sd2.f32.hidden_states");
}

#[test]
fn text_encoder_matches_transformers_gelu_fp16_variant() {
    assert_hidden_states_match("tiny-sd2", Some("fp16"), "tiny-sd2.fp16.hidden_states");
}

#[test]
fn text_encoder_matches_transformers_quick_gelu_bf16_sharded_with_text_model_prefix() {
    assert_hidden_states_match("tiny-sd1", None, "tiny-sd1.bf16.hidden_states");
}

fn embedding(name: &str) -> (TextualInversion, std::path::PathBuf) {
    let path = common::fixtures().join("embeddings").join(name);
    (
        TextualInversion::from_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap(),
        path,
    )
}

fn encoder_with_embeddings(model_name: &str, variant: Option<&str>) -> PromptEncoder {
    let mut encoder =
        block_on(PromptEncoder::load(&model(model_name), variant, &device())).unwrap();
    for file in ["mia.safetensors", "cat-toy.safetensors"] {
        let (ti, path) = embedding(file);
        encoder.add_embedding(&ti, &path).unwrap();
    }
    encoder
}

fn assert_textual_inversion_matches(model_name: &str, variant: Option<&str>) {
    let encoder = encoder_with_embeddings(model_name, variant);
    let golden = &golden_json()["embeddings"][model_name];
    let indices: Vec<usize> = serde_json::from_value(golden["prompt_indices"].clone()).unwrap();
    let expected: Vec<Vec<u32>> = serde_json::from_value(golden["ids"].clone()).unwrap();
    let prompts = prompts();
    for (index, expected) in indices.iter().zip(&expected) {
        assert_eq!(
            &encoder.input_ids(&prompts[*index]).unwrap(),
            expected,
            "prompt {:?}",
            prompts[*index]
        );
    }
    let selected: Vec<&str> = indices[..4]
        .iter()
        .map(|&index| prompts[index].as_str())
        .collect();
    let actual = values(encoder.encode(&selected).unwrap());
    let expected = golden_tensor(
        "text-golden.safetensors",
        &format!("{model_name}.embeddings.hidden_states"),
    );
    let error = max_abs_diff(&actual, &expected);
    eprintln!("{model_name} with embeddings: max abs error {error:e}");
    assert!(error <= TOLERANCE, "max abs error {error}");
}

#[test]
fn textual_inversion_matches_diffusers_multi_vector_and_a1111() {
    assert_textual_inversion_matches("tiny-sd2", Some("fp16"));
    assert_textual_inversion_matches("tiny-sd1", None);
}

#[test]
fn embedding_tokens_get_ids_after_the_vocabulary() {
    let encoder = encoder_with_embeddings("tiny-sd2", None);
    assert_eq!(encoder.tokenizer.token_id("<mia>"), Some(49408));
    assert_eq!(encoder.tokenizer.token_id("<mia>_1"), Some(49409));
    assert_eq!(encoder.tokenizer.token_id("cat-toy"), Some(49410));
    assert_eq!(encoder.text_encoder.vocab_rows(), 49411);
    assert_eq!(
        encoder
            .expand_multi_vector_tokens("a photo of <mia>")
            .unwrap(),
        "a photo of <mia> <mia>_1"
    );
}

#[test]
fn the_cli_prints_ids_and_writes_hidden_states() {
    let folder = common::fixtures().join("tiny-sd2");
    let mia = common::fixtures().join("embeddings/mia.safetensors");
    let output = common::run_toddler(&[
        "tokenize".as_ref(),
        "--model".as_ref(),
        folder.as_os_str(),
        "--embedding".as_ref(),
        mia.as_os_str(),
        "a photo of <mia>".as_ref(),
    ]);
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<u32> = serde_json::from_value(line["input_ids"].clone()).unwrap();
    assert_eq!(&ids[..7], &[49406, 320, 1125, 539, 49408, 49409, 49407]);
    assert_eq!(ids.len(), 77);

    let out =
        std::env::temp_dir().join(format!("toddler-encode-{}.safetensors", std::process::id()));
    common::run_toddler(&[
        "encode-prompt".as_ref(),
        "--model".as_ref(),
        folder.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "a photo of a cat".as_ref(),
    ]);
    let written = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&written).unwrap();
    let hidden = tensors.tensor("hidden_states").unwrap();
    assert_eq!(hidden.shape(), &[1, 77, 16]);
    // Same as the library for the same prompt (the first golden prompt).
    let (_, golden) = golden_tensor("text-golden.safetensors", "tiny-sd2.f32.hidden_states");
    assert_eq!(hidden.dtype(), safetensors::Dtype::F32);
    let first = engine::loaders::weights::float_values(hidden.dtype(), hidden.data()).unwrap();
    let error = first
        .iter()
        .zip(&golden[..77 * 16])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(error <= TOLERANCE, "{error}");
}

#[test]
fn the_cli_explains_a_missing_model_folder() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_toddler"))
        .args(["tokenize", "--model", "/nonexistent/model", "hello"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("/nonexistent/model/tokenizer/vocab.json"),
        "{message}"
    );
}
