//! A language model's chat template: the Jinja program its files carry (`tokenizer_config.json`'s
//! `chat_template`, a GGUF's `tokenizer.chat_template`) that turns a conversation into the text
//! the model was tuned on. Rendered with minijinja set up as transformers' `apply_chat_template`
//! sets up Jinja (blocks trimmed, `loop` controls, `raise_exception`, Python's string methods),
//! so any model's own template works without the engine knowing its format.

use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

use crate::error::{EngineError, Result};

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A model's chat template and the special tokens it may name.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    pub source: String,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

impl ChatTemplate {
    /// The conversation as the model reads it; `add_generation_prompt` opens the assistant's turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut environment = Environment::new();
        environment.set_trim_blocks(true);
        environment.set_lstrip_blocks(true);
        environment
            .set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        environment.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        let context = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        };
        environment
            .render_str(&self.source, context)
            .map_err(|error| {
                EngineError::Usage(format!("the model's chat template failed: {error}"))
            })
    }
}
