//! The CLIP tokenizer of Stable Diffusion pipelines, giving the ids transformers'
//! `CLIPTokenizer` gives.
//!
//! The hub's Stable Diffusion repos ship `vocab.json` + `merges.txt` only; from those this module
//! builds the same `tokenizers` pipeline transformers builds (NFC, whitespace collapse, lowercase;
//! CLIP's split pattern; byte-level BPE with `</w>` word ends). A `tokenizer.json` is used as is.
//! Special tokens are matched in the raw text, as transformers does, so `!` is the pad token
//! itself for SD 2.x tokenizers.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{EngineError, Result};
use crate::loaders::files::{ModelFiles, parse_json};

/// CLIP's context length: every prompt becomes exactly this many ids.
pub const MAX_LENGTH: usize = 77;

// An embedding's vectors must fit between a prompt's start and end marks.
const _: () = assert!(crate::loaders::limits::MAX_EMBEDDING_VECTORS == MAX_LENGTH - 2);

/// What transformers' CLIP tokenizer splits words with, before byte-level BPE.
const CLIP_SPLIT_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

#[derive(Clone, Debug)]
pub struct ClipTokenizer {
    tokenizer: Tokenizer,
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    max_length: usize,
    /// Where it came from, for error messages.
    folder: PathBuf,
}

impl ClipTokenizer {
    /// Loads `tokenizer/` of a diffusers folder.
    pub async fn from_model(files: &impl ModelFiles) -> Result<Self> {
        let folder = files.display_path("tokenizer");
        let config = special_tokens(files).await?;
        let tokenizer = match files.read("tokenizer/tokenizer.json").await? {
            Some(bytes) => {
                Tokenizer::from_bytes(&bytes).map_err(|error| EngineError::Tokenizer {
                    path: files.display_path("tokenizer/tokenizer.json"),
                    message: error.to_string(),
                })?
            }
            None => from_vocab_and_merges(files, &config).await?,
        };
        let id = |token: &str, role: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| EngineError::Tokenizer {
                    path: folder.clone(),
                    message: format!("the {role} token `{token}` is not in the vocabulary"),
                })
        };
        Ok(ClipTokenizer {
            bos_id: id(&config.bos, "beginning-of-text")?,
            eos_id: id(&config.eos, "end-of-text")?,
            pad_id: id(&config.pad, "padding")?,
            max_length: config.max_length.min(MAX_LENGTH),
            tokenizer,
            folder,
        })
    }

    /// Exactly `MAX_LENGTH` ids: BOS, the prompt's tokens (truncated), EOS, then padding.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|error| self.error(error))?;
        let content = &encoding.get_ids()[..encoding.get_ids().len().min(self.max_length - 2)];
        let mut ids = Vec::with_capacity(MAX_LENGTH);
        ids.push(self.bos_id);
        ids.extend_from_slice(content);
        ids.push(self.eos_id);
        ids.resize(MAX_LENGTH, self.pad_id);
        Ok(ids)
    }

    /// The tokens of a prompt, as strings (no BOS/EOS), as transformers' `tokenize`.
    pub fn tokens(&self, prompt: &str) -> Result<Vec<String>> {
        let encoding = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|error| self.error(error))?;
        Ok(encoding.get_tokens().to_vec())
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Adds tokens after the vocabulary (ids `vocab_size`, …), matched in prompts as whole strings,
    /// as transformers' `add_tokens` does. Returns their ids.
    pub fn add_tokens(&mut self, tokens: &[String]) -> Result<Vec<u32>> {
        for token in tokens {
            if self.tokenizer.token_to_id(token).is_some() {
                return Err(EngineError::Tokenizer {
                    path: self.folder.clone(),
                    message: format!(
                        "the token `{token}` is already in the vocabulary; choose another name"
                    ),
                });
            }
        }
        let added: Vec<AddedToken> = tokens
            .iter()
            .map(|token| AddedToken::from(token.as_str(), false))
            .collect();
        self.tokenizer.add_tokens(&added);
        Ok(tokens
            .iter()
            .map(|token| self.tokenizer.token_to_id(token).expect("just added"))
            .collect())
    }

    /// Whether `token` was added after the base vocabulary (a textual-inversion token).
    pub fn is_added_token(&self, token: &str) -> bool {
        self.tokenizer
            .get_added_vocabulary()
            .get_vocab()
            .contains_key(token)
    }

    fn error(&self, error: impl std::fmt::Display) -> EngineError {
        EngineError::Tokenizer {
            path: self.folder.clone(),
            message: error.to_string(),
        }
    }
}

/// The special tokens and length of a tokenizer folder.
struct SpecialTokens {
    bos: String,
    eos: String,
    unk: String,
    pad: String,
    max_length: usize,
}

/// `tokenizer_config.json`, then `special_tokens_map.json` over it; either may be absent.
async fn special_tokens(files: &impl ModelFiles) -> Result<SpecialTokens> {
    #[derive(Deserialize, Default)]
    struct Entries {
        bos_token: Option<TokenEntry>,
        eos_token: Option<TokenEntry>,
        unk_token: Option<TokenEntry>,
        pad_token: Option<TokenEntry>,
        model_max_length: Option<f64>,
    }
    async fn read(files: &impl ModelFiles, relative: &str) -> Result<Entries> {
        match files.read(relative).await? {
            Some(bytes) => parse_json(
                &bytes,
                &files.display_path(relative),
                "a tokenizer configuration",
            ),
            None => Ok(Entries::default()),
        }
    }
    let config = read(files, "tokenizer/tokenizer_config.json").await?;
    let map = read(files, "tokenizer/special_tokens_map.json").await?;
    let pick = |over: Option<TokenEntry>, under: Option<TokenEntry>, default: &str| {
        over.or(under)
            .map_or_else(|| default.to_owned(), TokenEntry::content)
    };
    let eos = pick(map.eos_token, config.eos_token, "<|endoftext|>");
    Ok(SpecialTokens {
        bos: pick(map.bos_token, config.bos_token, "<|startoftext|>"),
        unk: pick(map.unk_token, config.unk_token, &eos),
        pad: pick(map.pad_token, config.pad_token, &eos),
        eos,
        // Some configs say 1e30 for "no limit"; CLIP's position table has 77 rows either way.
        max_length: config
            .model_max_length
            .map_or(MAX_LENGTH, |length| length.min(MAX_LENGTH as f64) as usize),
    })
}

/// A special token is written either as a string or as an `AddedToken` object.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenEntry {
    Plain(String),
    Object { content: String },
}

impl TokenEntry {
    fn content(self) -> String {
        match self {
            TokenEntry::Plain(content) | TokenEntry::Object { content } => content,
        }
    }
}

/// The pipeline transformers' `CLIPTokenizer` builds from `vocab.json` and `merges.txt`.
async fn from_vocab_and_merges(
    files: &impl ModelFiles,
    special: &SpecialTokens,
) -> Result<Tokenizer> {
    let vocab_path = files.display_path("tokenizer/vocab.json");
    let vocab: HashMap<String, u32> = parse_json(
        &files
            .require("tokenizer/vocab.json", "the tokenizer's vocabulary")
            .await?,
        &vocab_path,
        "a token vocabulary",
    )?;
    let merges_bytes = files
        .require("tokenizer/merges.txt", "the tokenizer's BPE merges")
        .await?;
    let merges_path = files.display_path("tokenizer/merges.txt");
    let merges_text = String::from_utf8(merges_bytes).map_err(|_| EngineError::Tokenizer {
        path: merges_path.clone(),
        message: "is not UTF-8 text".into(),
    })?;
    let mut merges = Vec::new();
    for (number, line) in merges_text.lines().enumerate() {
        if line.starts_with("#version") || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(left), Some(right), None) => merges.push(json!([left, right])),
            _ => {
                return Err(EngineError::Tokenizer {
                    path: merges_path,
                    message: format!("line {} is not a pair of symbols: {line:?}", number + 1),
                });
            }
        }
    }
    let mut added_tokens = Vec::new();
    for token in [&special.pad, &special.bos, &special.eos, &special.unk] {
        let Some(&id) = vocab.get(token.as_str()) else {
            return Err(EngineError::Tokenizer {
                path: vocab_path,
                message: format!("the special token `{token}` is not in the vocabulary"),
            });
        };
        if !added_tokens.iter().any(|added: &Value| added["id"] == id) {
            added_tokens.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": true
            }));
        }
    }
    let definition = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"}
        ]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": CLIP_SPLIT_PATTERN}, "behavior": "Removed", "invert": true},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": special.unk, "continuing_subword_prefix": "",
            "end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    });
    Tokenizer::from_bytes(definition.to_string().as_bytes()).map_err(|error| {
        EngineError::Tokenizer {
            path: files.display_path("tokenizer"),
            message: format!("vocab.json and merges.txt do not make a BPE tokenizer: {error}"),
        }
    })
}
