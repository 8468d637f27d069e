//! The one error type of the engine. Every variant names the file (and tensor) it is about, so
//! a parent-facing message can say exactly what is wrong with a model folder.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: missing from the model folder ({what})")]
    MissingFile { path: PathBuf, what: &'static str },

    #[error("{path}: could not be read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: is not valid JSON for {what}: {message}")]
    Json {
        path: PathBuf,
        what: &'static str,
        message: String,
    },

    /// A configuration that parses but asks for what no model can be (or this engine runs).
    #[error("{path}: {problem}")]
    Config { path: PathBuf, problem: String },

    #[error("{path}: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("{path}: tensor `{tensor}`: {problem}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        problem: String,
    },

    #[error("{path}: {problem}")]
    Weights { path: PathBuf, problem: String },

    #[error("{path}: {problem}")]
    Embedding { path: PathBuf, problem: String },

    #[error("{path}: {problem}")]
    Lora { path: PathBuf, problem: String },

    #[error("{url}: {problem}")]
    Network { url: String, problem: String },

    #[error("{0}")]
    Usage(String),

    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
