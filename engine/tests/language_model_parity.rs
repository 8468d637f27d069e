//! The story writer's language models against transformers (`models/make_llm_fixtures.py`):
//! tiny random Llama (SmolLM2-like) and Qwen2 models, each as a transformers folder and as a GGUF
//! whose tensors use every quantisation the engine reads, and the real SmolLM2-135M-Instruct
//! (Q4_1 GGUF, fetched by `cargo xtask language-model`).
//!
//! Tolerance, stated once: logits within 1e-4 of the largest logit's magnitude (max absolute
//! difference). transformers dequantises GGUF tensors to f32 as the engine does, so both compute
//! in f32 from the same values and differ only in the order sums round (measured: tiny models
//! ~1e-6, the real model ~1e-5 of the scale). Greedy continuations must be identical.

mod common;

use std::path::PathBuf;

use engine::device::ComputeBackend;
use engine::loaders::files::{Folder, block_on};
use engine::models::llama::KvCache;
use engine::pipelines::text_generation::{LanguageModel, Next};
use engine::sampling::Sampling;

const TOLERANCE: f32 = 1e-4;

fn llm_fixtures() -> PathBuf {
    common::fixtures().join("llm")
}

fn golden(file: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(llm_fixtures().join(file)).unwrap()).unwrap()
}

fn load(name: &str, device: &burn::tensor::Device) -> LanguageModel {
    let (files, gguf) = if name.ends_with(".gguf") {
        (Folder(llm_fixtures()), Some(name))
    } else {
        (Folder(llm_fixtures().join(name)), None)
    };
    block_on(LanguageModel::load(&files, gguf, device))
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap() as u32)
        .collect()
}

fn assert_close(name: &str, actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len(), "{name}: logits' length");
    let scale = expected
        .iter()
        .fold(0.0f32, |max, value| max.max(value.abs()));
    let worst = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("{name}: max |Δlogit| {worst:.2e} (scale {scale:.2})");
    assert!(
        worst <= TOLERANCE * scale,
        "{name}: logits differ by {worst} (scale {scale})"
    );
}

fn greedy(model: &LanguageModel, prompt: &[u32], tokens: usize) -> Vec<u32> {
    let mut cache = model.cache_for(prompt.len(), tokens).unwrap();
    block_on(
        model.complete(prompt, tokens, Sampling::default(), &mut cache, |_| {
            Next::Continue
        }),
    )
    .unwrap()
    .ids
}

/// Tokenizer, logits at every prompt position, and the greedy continuation of one tiny model.
fn assert_matches_transformers(name: &str, device: &burn::tensor::Device) {
    let model = load(name, device);
    let golden = &golden("llm-golden.json")[name];
    for (text, expected) in golden["tokens"].as_object().unwrap() {
        assert_eq!(
            model.tokenizer.encode(text).unwrap(),
            ids(expected),
            "{name}: {text:?}"
        );
    }
    for (number, prompt) in golden["prompts"].as_array().unwrap().iter().enumerate() {
        let prompt_ids = ids(&prompt["ids"]);
        assert_eq!(
            model
                .tokenizer
                .encode(prompt["prompt"].as_str().unwrap())
                .unwrap(),
            prompt_ids
        );
        let mut cache = KvCache::new(&model.model, 64).unwrap();
        let hidden = model.model.forward(&prompt_ids, &mut cache).unwrap();
        let logits = common::values(model.model.logits(hidden));
        let expected =
            common::golden_tensor("llm/llm-golden.safetensors", &format!("{name}.{number}"));
        assert_eq!(logits.0[1..], expected.0[..]);
        assert_close(&format!("{name} prompt {number}"), &logits.1, &expected.1);
        let continuation = greedy(&model, &prompt_ids, ids(&prompt["greedy"]).len());
        assert_eq!(
            continuation,
            ids(&prompt["greedy"]),
            "{name}: greedy continuation"
        );
    }
}

#[test]
fn llama_folder_matches_transformers() {
    assert_matches_transformers("tiny-llama", &common::device());
}

#[test]
fn llama_gguf_with_every_quantisation_matches_transformers() {
    assert_matches_transformers("tiny-llama.gguf", &common::device());
}

#[test]
fn qwen2_sharded_bf16_folder_matches_transformers() {
    assert_matches_transformers("tiny-qwen2", &common::device());
}

#[test]
fn qwen2_gguf_with_every_quantisation_matches_transformers() {
    assert_matches_transformers("tiny-qwen2.gguf", &common::device());
}

#[test]
fn the_gpu_backend_in_f32_matches_transformers() {
    let (device, _) = ComputeBackend::Gpu
        .device_with(Some(engine::device::Precision::F32))
        .expect("the test GPU (lavapipe)");
    assert_matches_transformers("tiny-qwen2.gguf", &device);
    assert_matches_transformers("tiny-llama", &device);
}

/// Token by token through the cache gives the scores a single batch gives.
#[test]
fn the_cache_gives_the_scores_of_one_batch() {
    let device = common::device();
    let model = load("tiny-qwen2.gguf", &device);
    let ids = model
        .tokenizer
        .encode("The duck said quack, and the baby laughed")
        .unwrap();
    let mut whole = KvCache::new(&model.model, 32).unwrap();
    let all = common::values(
        model
            .model
            .logits(model.model.forward(&ids, &mut whole).unwrap()),
    );
    let mut stepwise = KvCache::new(&model.model, 32).unwrap();
    let split = 3;
    model.model.forward(&ids[..split], &mut stepwise).unwrap();
    let vocab = all.0[2];
    for (position, id) in ids.iter().enumerate().skip(split) {
        let step = common::values(
            model
                .model
                .logits(model.model.forward(&[*id], &mut stepwise).unwrap()),
        );
        assert_close(
            &format!("position {position}"),
            &step.1,
            &all.1[position * vocab..(position + 1) * vocab],
        );
    }
    // Past the cache's capacity is a plain error, not a panic.
    let mut small = KvCache::new(&model.model, 4).unwrap();
    let error = model
        .model
        .forward(&ids, &mut small)
        .unwrap_err()
        .to_string();
    assert!(error.contains("more than the 4"), "{error}");
}

#[test]
fn sampling_is_seeded_and_stops_when_asked() {
    let device = common::device();
    let model = load("tiny-llama.gguf", &device);
    let prompt = model.tokenizer.encode("Once upon a time").unwrap();
    let sample = |seed| {
        let mut cache = model.cache_for(prompt.len(), 12).unwrap();
        let settings = Sampling {
            temperature: Some(1.5),
            top_p: 0.95,
            top_k: 50,
            repetition_penalty: 1.1,
            seed,
        };
        block_on(model.complete(&prompt, 12, settings, &mut cache, |_| Next::Continue))
            .unwrap()
            .ids
    };
    assert_eq!(sample(1), sample(1));
    assert_ne!(sample(1), sample(2));
    let mut cache = model.cache_for(prompt.len(), 12).unwrap();
    let mut seen = 0;
    let stopped = block_on(
        model.complete(&prompt, 12, Sampling::default(), &mut cache, |_| {
            seen += 1;
            if seen == 3 {
                Next::Stop
            } else {
                Next::Continue
            }
        }),
    )
    .unwrap();
    assert!(stopped.stopped);
    assert_eq!(stopped.ids.len(), 3);
}

/// The real SmolLM2-135M-Instruct (Q4_1 with a Q8_0 embedding) as transformers runs it.
#[test]
fn real_smollm2_135m_matches_transformers() {
    let path = common::real_model_path();
    assert!(
        path.exists(),
        "no SmolLM2-135M-Instruct at {}: run `cargo xtask language-model`",
        path.display()
    );
    let device = common::device();
    let files = Folder(path.parent().unwrap().to_owned());
    let name = path.file_name().unwrap().to_str().unwrap();
    let model = block_on(LanguageModel::load(&files, Some(name), &device)).unwrap();
    let golden = golden("smollm2-135m-golden.json");
    for (text, expected) in golden["tokens"].as_object().unwrap() {
        assert_eq!(
            model.tokenizer.encode(text).unwrap(),
            ids(expected),
            "{text:?}"
        );
    }
    for (number, prompt) in golden["prompts"].as_array().unwrap().iter().enumerate() {
        let prompt_ids = ids(&prompt["ids"]);
        let expected = common::golden_tensor(
            "llm/smollm2-135m-golden.safetensors",
            &format!("smollm2.{number}"),
        );
        let mut cache = model.cache_for(prompt_ids.len(), 10).unwrap();
        let completion =
            block_on(
                model.complete(&prompt_ids, 10, Sampling::default(), &mut cache, |_| {
                    Next::Continue
                }),
            )
            .unwrap();
        assert_close(
            &format!("SmolLM2 prompt {number}"),
            &completion.prompt_logits,
            &expected.1,
        );
        assert_eq!(completion.ids, ids(&prompt["greedy"]));
        assert_eq!(completion.text, prompt["greedy_text"].as_str().unwrap());
    }
}

/// The conversations of `models/make_llm_fixtures.py` (`CONVERSATIONS`).
fn conversations() -> Vec<Vec<engine::models::llama::Message>> {
    use engine::models::llama::Message;
    vec![
        vec![
            Message::new("system", "You write short picture books for toddlers."),
            Message::new("user", "Write a story about {child} and the bath."),
        ],
        vec![
            Message::new("user", "Hello!"),
            Message::new("assistant", "Hi! Which story shall we read?"),
            Message::new("user", "The duck one, with \"quotes\" and\nnew lines."),
        ],
    ]
}

fn assert_chats_match(model: &LanguageModel, expected: &serde_json::Value, name: &str) {
    let template = model.chat_template.as_ref().expect("a chat template");
    for (conversation, expected) in conversations().iter().zip(expected.as_array().unwrap()) {
        assert_eq!(
            template.render(conversation, true).unwrap(),
            expected.as_str().unwrap(),
            "{name}: the chat template"
        );
    }
}

#[test]
fn chat_templates_render_as_transformers_renders_them() {
    let device = common::device();
    let tiny = golden("llm-golden.json");
    for name in [
        "tiny-llama",
        "tiny-llama.gguf",
        "tiny-qwen2",
        "tiny-qwen2.gguf",
    ] {
        assert_chats_match(&load(name, &device), &tiny[name]["chats"], name);
    }
    // SmolLM2's own template adds its default system prompt when a conversation has none.
    let path = common::real_model_path();
    let files = Folder(path.parent().unwrap().to_owned());
    let name = path.file_name().unwrap().to_str().unwrap();
    let model = block_on(LanguageModel::load(&files, Some(name), &device)).unwrap();
    assert_chats_match(
        &model,
        &golden("smollm2-135m-golden.json")["chats"],
        "SmolLM2",
    );
}
