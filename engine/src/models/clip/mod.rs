//! CLIP's text side, as transformers lays out a model family: the text encoder
//! (`text_model.rs`, transformers' `CLIPTextModel`) and its tokenizer (`tokenizer.rs`).

pub mod text_model;
pub mod token_table;
pub mod tokenizer;

pub use text_model::{ClipTextConfig, ClipTextModel};
pub use tokenizer::{ClipTokenizer, MAX_LENGTH};
