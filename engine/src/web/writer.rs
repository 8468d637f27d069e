//! The worker's language model: [`Request::Complete`](protocol::Request::Complete) and
//! [`Request::WriteStory`](protocol::Request::WriteStory) load it (kept for the next request
//! from the same files on the same backend) and stream each token or piece back as it is
//! written; a cancel stops it between tokens with the text so far.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::Device;
use protocol::{Completed, DeviceInfo, Event, ModelSource, StoryWritten};
use stories::writer::StoryIdea;
use web_time::Instant;

use super::files::SourceFiles;
use super::state::State;
use super::{gpu_memory, post};
use crate::error::Result;
use crate::pipelines::story_writer::{Written, write_story as write};
use crate::pipelines::text_generation::{LanguageModel, Next};

/// What identifies a loaded language model: its files and the device it is on.
pub(crate) fn model_key(source: &ModelSource, file: Option<&str>, info: &DeviceInfo) -> String {
    format!(
        "{source:?}|{file:?}|{:?}|{:?}",
        info.backend, info.precision
    )
}

/// The language model from `source`, loaded now (and the milliseconds it took) or kept from an
/// earlier request.
async fn loaded(
    state: &Rc<RefCell<State>>,
    source: &ModelSource,
    file: Option<&str>,
    device: &Device,
    info: &DeviceInfo,
) -> Result<(Rc<LanguageModel>, f64)> {
    let key = model_key(source, file, info);
    let started = Instant::now();
    let loaded = state
        .borrow()
        .language_model
        .as_ref()
        .filter(|(loaded, _)| *loaded == key)
        .map(|(_, model)| model.clone());
    if let Some(model) = loaded {
        return Ok((model, 0.0));
    }
    // Free the old model before the new one streams in.
    state.borrow_mut().language_model = None;
    let files = SourceFiles::open(source).await?;
    let model = Rc::new(LanguageModel::load(&files, file, device).await?);
    state.borrow_mut().language_model = Some((key, model.clone()));
    Ok((model, started.elapsed().as_secs_f64() * 1000.0))
}

/// The story writer: each piece streamed as [`Event::StoryDraft`] while it is written.
pub(crate) async fn write_story(
    state: &Rc<RefCell<State>>,
    id: u32,
    source: &ModelSource,
    file: Option<&str>,
    (device, info): (Device, DeviceInfo),
    idea: &StoryIdea,
    seed: u64,
) -> Result<Event> {
    idea.check().map_err(crate::error::EngineError::Usage)?;
    let (model, load_ms) = loaded(state, source, file, &device, &info).await?;
    let cancelled = || state.borrow().cancelled.contains(&id);
    let outcome = write(&model, idea, seed, |written| {
        let event = match written {
            Written::Piece { part, text, kept } => Event::StoryDraft {
                id,
                part,
                text: text.to_owned(),
                kept,
            },
            Written::Rewriting { part, reason } => Event::StoryRewriting {
                id,
                part,
                reason: reason.to_owned(),
            },
        };
        post(&event, None);
        if cancelled() {
            Next::Stop
        } else {
            Next::Continue
        }
    })
    .await?;
    Ok(Event::StoryWritten {
        id,
        result: StoryWritten {
            device: info,
            story: outcome.story,
            rewrites: outcome.rewrites,
            tokens_written: outcome.tokens_written,
            tokens_read: outcome.tokens_read,
            load_ms,
            write_ms: outcome.seconds * 1000.0,
            stopped: outcome.stopped,
            wasm_heap_bytes: super::wasm_heap_bytes(),
            gpu_memory: gpu_memory(&device),
        },
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn complete(
    state: &Rc<RefCell<State>>,
    id: u32,
    source: &ModelSource,
    file: Option<&str>,
    (device, info): (Device, DeviceInfo),
    prompt: &str,
    max_tokens: usize,
    sampling: protocol::Sampling,
) -> Result<Event> {
    let (model, load_ms) = loaded(state, source, file, &device, &info).await?;
    let ids = model.tokenizer.encode(prompt)?;
    let mut cache = model.cache_for(ids.len(), max_tokens)?;
    let completion = model
        .complete(&ids, max_tokens, sampling, &mut cache, |token| {
            post(
                &Event::TokenWritten {
                    id,
                    token: token.id,
                    text: token.text.to_owned(),
                },
                None,
            );
            if state.borrow().cancelled.contains(&id) {
                Next::Stop
            } else {
                Next::Continue
            }
        })
        .await?;
    Ok(Event::Completed {
        id,
        result: Completed {
            device: info,
            ids: completion.ids,
            text: completion.text,
            prompt_tokens: ids.len(),
            load_ms,
            prompt_ms: completion.prompt_seconds * 1000.0,
            generation_ms: completion.generation_seconds * 1000.0,
            stopped: completion.stopped,
            wasm_heap_bytes: super::wasm_heap_bytes(),
            gpu_memory: gpu_memory(&device),
        },
    })
}
