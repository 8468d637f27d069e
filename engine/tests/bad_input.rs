//! Bad model folders and embedding files give errors that name the file and the tensor — never a
//! panic, and never a half-changed encoder.

mod common;

use engine::loaders::files::block_on;
use std::collections::BTreeMap;

use common::{device, model_in_memory, read};
use engine::EngineError;
use engine::loaders::files::InMemory;
use engine::loaders::textual_inversion::TextualInversion;
use engine::pipelines::prompt::PromptEncoder;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

const WEIGHTS: &str = "text_encoder/model.safetensors";

fn load(files: &InMemory) -> Result<PromptEncoder, EngineError> {
    block_on(PromptEncoder::load(files, None, &device()))
}

fn error_text(files: &InMemory) -> String {
    match load(files) {
        Ok(_) => panic!("loading should have failed"),
        Err(error) => error.to_string(),
    }
}

/// The tiny SD2 folder with its f32 weights rewritten by `edit` (name → (dtype, shape, bytes)).
fn with_weights(
    edit: impl FnOnce(&mut BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>),
) -> InMemory {
    let mut files = model_in_memory("tiny-sd2");
    files.0.remove("text_encoder/model.fp16.safetensors");
    let bytes = read(&files, WEIGHTS);
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut map: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
            )
        })
        .collect();
    edit(&mut map);
    let views: Vec<(String, TensorView)> = map
        .iter()
        .map(|(name, (dtype, shape, data))| {
            (
                name.clone(),
                TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    files
        .0
        .insert(WEIGHTS.into(), safetensors::serialize(views, None).unwrap());
    files
}

#[test]
fn a_missing_tokenizer_file_is_named() {
    let mut files = model_in_memory("tiny-sd2");
    files.0.remove("tokenizer/merges.txt");
    let message = error_text(&files);
    assert!(
        message.contains("tokenizer/merges.txt") && message.contains("missing"),
        "{message}"
    );
}

#[test]
fn broken_config_json_is_named() {
    let mut files = model_in_memory("tiny-sd2");
    files.0.insert(
        "text_encoder/config.json".into(),
        b"{ \"hidden_size\": 16,".to_vec(),
    );
    let message = error_text(&files);
    assert!(
        message.contains("text_encoder/config.json") && message.contains("not valid JSON"),
        "{message}"
    );
}

#[test]
fn missing_weights_are_named() {
    let mut files = model_in_memory("tiny-sd2");
    files.0.retain(|path, _| !path.ends_with(".safetensors"));
    let message = error_text(&files);
    assert!(
        message.contains("text_encoder/model.safetensors") && message.contains("missing"),
        "{message}"
    );
}

#[test]
fn a_missing_tensor_is_named() {
    let files = with_weights(|tensors| {
        tensors.remove("encoder.layers.1.mlp.fc2.bias");
    });
    let message = error_text(&files);
    assert!(
        message.contains("model.safetensors") && message.contains("encoder.layers.1.mlp.fc2.bias"),
        "{message}"
    );
    assert!(message.contains("missing"), "{message}");
}

#[test]
fn an_extra_tensor_is_named() {
    let files = with_weights(|tensors| {
        tensors.insert(
            "encoder.layers.2.mlp.fc1.bias".into(),
            (Dtype::F32, vec![2], vec![0; 8]),
        );
    });
    let message = error_text(&files);
    assert!(
        message.contains("encoder.layers.2.mlp.fc1.bias")
            && message.contains("not part of this model"),
        "{message}"
    );
}

#[test]
fn a_mis_shaped_tensor_is_named_with_both_shapes() {
    let files = with_weights(|tensors| {
        tensors.insert(
            "final_layer_norm.weight".into(),
            (Dtype::F32, vec![8], vec![0; 32]),
        );
    });
    let message = error_text(&files);
    assert!(message.contains("final_layer_norm"), "{message}");
    assert!(
        message.contains("[8]") && message.contains("[16]"),
        "{message}"
    );
}

#[test]
fn an_unsupported_dtype_is_named() {
    let files = with_weights(|tensors| {
        let (_, shape, data) = tensors.remove("final_layer_norm.bias").unwrap();
        tensors.insert("final_layer_norm.bias".into(), (Dtype::I32, shape, data));
    });
    let message = error_text(&files);
    assert!(message.contains("final_layer_norm"), "{message}");
}

#[test]
fn a_file_that_is_not_safetensors_is_named() {
    let mut files = model_in_memory("tiny-sd2");
    files
        .0
        .insert(WEIGHTS.into(), b"this is not a safetensors file".to_vec());
    let message = error_text(&files);
    assert!(message.contains("model.safetensors"), "{message}");
}

fn embedding_error(bytes: &[u8], name: &str) -> String {
    let path = std::path::Path::new("/photos").join(name);
    TextualInversion::from_safetensors(bytes, &path)
        .unwrap_err()
        .to_string()
}

fn safetensors_file(tensors: &[(&str, Dtype, Vec<usize>)]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, dtype, shape)| vec![0; shape.iter().product::<usize>() * dtype.bitsize() / 8])
        .collect();
    let views: Vec<(&str, TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, dtype, shape), data)| {
            (*name, TensorView::new(*dtype, shape.clone(), data).unwrap())
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

#[test]
fn embedding_files_in_unknown_formats_are_explained() {
    let two = safetensors_file(&[
        ("a", Dtype::F32, vec![1, 16]),
        ("b", Dtype::F32, vec![1, 16]),
    ]);
    assert!(embedding_error(&two, "two.safetensors").contains("exactly one"));
    assert!(embedding_error(b"GIF89a", "picture.gif").contains("is not an embedding file"));
    assert!(
        embedding_error(b"PK\x03\x04archive/data.pkl", "a1111.pt").contains("PyTorch .pt file")
    );
    let ints = safetensors_file(&[("<x>", Dtype::I64, vec![1, 16])]);
    assert!(embedding_error(&ints, "ints.safetensors").contains("I64"));
    let cube = safetensors_file(&[("<x>", Dtype::F32, vec![1, 2, 16])]);
    assert!(embedding_error(&cube, "cube.safetensors").contains("[1, 2, 16]"));
}

#[test]
fn an_embedding_for_another_model_is_refused_and_changes_nothing() {
    let mut encoder = block_on(PromptEncoder::load(
        &common::model("tiny-sd2"),
        None,
        &device(),
    ))
    .unwrap();
    let path = common::fixtures().join("embeddings/wrong-dimension.safetensors");
    let wide = TextualInversion::from_safetensors(&std::fs::read(&path).unwrap(), &path).unwrap();
    let message = encoder.add_embedding(&wide, &path).unwrap_err().to_string();
    assert!(
        message.contains("wrong-dimension.safetensors")
            && message.contains("24")
            && message.contains("16"),
        "{message}"
    );
    assert_eq!(encoder.tokenizer.token_id("<wide>"), None);
    assert_eq!(encoder.text_encoder.vocab_rows(), 49408);
}

#[test]
fn a_token_already_in_the_vocabulary_is_refused() {
    let mut encoder = block_on(PromptEncoder::load(
        &common::model("tiny-sd2"),
        None,
        &device(),
    ))
    .unwrap();
    let cat = TextualInversion {
        token: "cat</w>".into(),
        vectors: vec![vec![0.0; 16]],
    };
    let path = std::path::Path::new("cat.safetensors");
    let message = encoder.add_embedding(&cat, path).unwrap_err().to_string();
    assert!(
        message.contains("cat</w>") && message.contains("already in the vocabulary"),
        "{message}"
    );
    assert_eq!(encoder.text_encoder.vocab_rows(), 49408);
}

#[test]
fn a_truncated_weights_file_is_named_before_any_tensor_is_used() {
    let mut files = model_in_memory("tiny-sd2");
    files.0.remove("text_encoder/model.fp16.safetensors");
    let bytes = files.0.get_mut(WEIGHTS).unwrap();
    bytes.truncate(bytes.len() - 1000);
    let message = error_text(&files);
    assert!(message.contains(WEIGHTS), "{message}");
    assert!(message.contains("incomplete"), "{message}");
}

#[test]
fn weights_stream_in_batches_that_tile_the_file() {
    let files = common::model("tiny-sd2");
    let header = block_on(engine::loaders::weights::SafetensorsHeader::read(
        &files, WEIGHTS,
    ))
    .unwrap();
    let size = std::fs::metadata(common::fixtures().join("tiny-sd2").join(WEIGHTS))
        .unwrap()
        .len();
    // Small batches: many reads, contiguous, covering the data section exactly once.
    let batches = header.batches(4 << 10);
    assert!(batches.len() > 5, "{} batches", batches.len());
    let mut next = header.data_start;
    for (names, range) in &batches {
        assert!(!names.is_empty());
        assert_eq!(range.start, next);
        next = range.end;
    }
    assert_eq!(next, size);
}
