//! The language model's tokenizer through the `tokenizers` crate: a transformers folder's
//! `tokenizer.json` as it is, or — from a GGUF, which has none — the byte-level BPE its metadata
//! describes (vocabulary, merges, token types, pre-tokenizer name), built as transformers builds
//! it (`integrations/gguf/gguf_tokenizer_mapping.py`) so both give the same ids.

use std::path::Path;

use serde_json::{Value, json};
use tokenizers::Tokenizer;

use crate::error::{EngineError, Result};
use crate::loaders::gguf::Gguf;

/// A tokenizer and the ids that end a reply.
#[derive(Debug)]
pub struct LanguageTokenizer {
    tokenizer: Tokenizer,
}

/// llama.cpp's token types: control tokens (`<|im_end|>`) are special, user-defined ones are
/// matched whole but not special.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// Qwen2's split (transformers' `PRETOKENIZE_REGEX`), the only pre-tokenizer besides
/// byte-level BPE's own among the families the writer runs.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's split, which several GGUF pre-tokenizer names share.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl LanguageTokenizer {
    /// A `tokenizer.json`.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<Self> {
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|error| EngineError::Tokenizer {
            path: path.to_owned(),
            message: format!("is not a tokenizer this engine reads: {error}"),
        })?;
        Ok(LanguageTokenizer { tokenizer })
    }

    /// The tokenizer a GGUF's metadata describes (`tokenizer.ggml.model = gpt2`: byte-level BPE).
    pub fn from_gguf(gguf: &Gguf, path: &Path) -> Result<Self> {
        let invalid = |message: String| EngineError::Tokenizer {
            path: path.to_owned(),
            message,
        };
        let text = |key: &str| gguf.get(key).and_then(|value| value.as_str());
        match text("tokenizer.ggml.model") {
            Some("gpt2") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "has a `{other}` tokenizer; the story writer reads byte-level BPE (`gpt2`) ones"
                )));
            }
            None => return Err(invalid("has no tokenizer".into())),
        }
        let tokens = gguf
            .get("tokenizer.ggml.tokens")
            .and_then(|value| value.as_strings())
            .ok_or_else(|| invalid("has no vocabulary (`tokenizer.ggml.tokens`)".into()))?;
        let merges = gguf
            .get("tokenizer.ggml.merges")
            .and_then(|value| value.as_strings())
            .ok_or_else(|| invalid("has no merges (`tokenizer.ggml.merges`)".into()))?;
        let types = gguf
            .get("tokenizer.ggml.token_type")
            .and_then(|value| value.as_ints())
            .unwrap_or(&[]);
        let alphabet = byte_alphabet();
        let in_alphabet = |token: &str| token.chars().all(|c| alphabet.contains(&c));
        let vocab: serde_json::Map<String, Value> = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| {
                let spelled = if in_alphabet(token) {
                    token.clone()
                } else {
                    token.bytes().map(|byte| alphabet[byte as usize]).collect()
                };
                (spelled, json!(id))
            })
            .collect();
        let merges: Vec<Value> = merges
            .iter()
            .map(|merge| {
                merge
                    .split_once(' ')
                    .map(|(left, right)| json!([left, right]))
                    .ok_or_else(|| invalid(format!("has a merge `{merge}` that is not a pair")))
            })
            .collect::<Result<_>>()?;
        let added: Vec<Value> = tokens
            .iter()
            .zip(types.iter().chain(std::iter::repeat(&1)))
            .enumerate()
            .filter(|(_, (token, kind))| {
                (**kind == CONTROL && in_alphabet(token)) || **kind == USER_DEFINED
            })
            .map(|(id, (token, kind))| {
                json!({
                    "id": id, "content": token, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": *kind == CONTROL,
                })
            })
            .collect();
        let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
        let split = match text("tokenizer.ggml.pre") {
            Some("qwen2" | "deepseek-r1-qwen") => Some(QWEN2_SPLIT),
            Some("llama3" | "llama-v3" | "llama-bpe" | "smaug-bpe" | "dbrx" | "falcon3") => {
                Some(LLAMA3_SPLIT)
            }
            _ => None,
        };
        let pre_tokenizer = match split {
            Some(pattern) => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false},
                byte_level(false),
            ]}),
            None => byte_level(true),
        };
        let add_bos = gguf
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|value| value.as_bool())
            .unwrap_or(false);
        let bos = gguf
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|value| value.as_u64())
            .and_then(|id| tokens.get(id as usize).map(|token| (id, token)));
        let post_processor = match (add_bos, bos) {
            (true, Some((id, token))) => {
                let mut special = serde_json::Map::new();
                special.insert(
                    token.clone(),
                    json!({"id": token, "ids": [id], "tokens": [token]}),
                );
                json!({
                    "type": "TemplateProcessing",
                    "single": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                    "pair": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                             {"Sequence": {"id": "B", "type_id": 1}}],
                    "special_tokens": special,
                })
            }
            _ => Value::Null,
        };
        let description = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": false, "vocab": vocab, "merges": merges,
            },
        });
        let tokenizer: Tokenizer = serde_json::from_value(description).map_err(|error| {
            invalid(format!(
                "describes a tokenizer that cannot be built: {error}"
            ))
        })?;
        Ok(LanguageTokenizer { tokenizer })
    }

    /// `text`'s ids as transformers' tokenizer gives them by default (special tokens added as
    /// its post-processor says; special tokens in the text matched whole).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, true).map_err(|error| {
            EngineError::Usage(format!("the text cannot be tokenised: {error}"))
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `text`'s ids without the special tokens a post-processor adds (a rendered chat template
    /// carries its own, as transformers' `apply_chat_template` tokenises it).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, false).map_err(|error| {
            EngineError::Usage(format!("the text cannot be tokenised: {error}"))
        })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|error| EngineError::Usage(format!("the ids cannot be decoded: {error}")))
    }

    /// The id of a token, if the vocabulary (or its added tokens) has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}

/// GPT-2's printable spelling of the 256 bytes (`bytes_to_unicode`): byte-level BPE vocabularies
/// are written in it.
fn byte_alphabet() -> Vec<char> {
    let printable = |byte: u32| {
        (u32::from('!')..=u32::from('~')).contains(&byte)
            || (0xA1..=0xAC).contains(&byte)
            || (0xAE..=0xFF).contains(&byte)
    };
    let mut next = 256;
    (0..256u32)
        .map(|byte| {
            let code = if printable(byte) {
                byte
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(code).expect("a valid code point")
        })
        .collect()
}
