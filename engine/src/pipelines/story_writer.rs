//! The story writer's recipe: a parent's idea becomes a titled story of exactly the pages asked
//! for, each with text and a scene. 1 the model reads its instructions (`stories::writer`, in the
//! model's own chat template), 2 the app writes a frame ("Page 3:") and the model fills in one
//! piece until its newline, 3 every piece is checked (suitable for toddlers, naming the child,
//! whole sentences) and written again from the same place when it fails, a bounded number of
//! times. Words on the app's list are banned at decoding where one token spells them; the check
//! catches the rest. One key/value cache holds the whole story: a retry rolls it back to the
//! piece's start, so nothing is read twice.

use stories::writer::{Part, StoryIdea, TRIES, WrittenPage, WrittenStory};

use crate::error::{EngineError, Result};
use crate::models::llama::Message;
use crate::pipelines::text_generation::{LanguageModel, Next};
use crate::sampling::{Sampler, Sampling};

/// What the writer reports as it writes.
#[derive(Debug)]
pub enum Written<'a> {
    /// `part` so far, the child named (replaces what was shown for it); `kept` once it is
    /// checked and final.
    Piece {
        part: Part,
        text: &'a str,
        kept: bool,
    },
    /// `part` failed its check (`reason`) and is written again.
    Rewriting { part: Part, reason: &'a str },
}

/// A finished (or stopped) story.
#[derive(Debug)]
pub struct StoryOutcome {
    /// The child named. Stopped early: the pages finished so far.
    pub story: WrittenStory,
    /// Pieces written again because a check failed.
    pub rewrites: usize,
    /// Tokens the model wrote (kept or not) and read (instructions and frames).
    pub tokens_written: usize,
    pub tokens_read: usize,
    pub seconds: f64,
    pub stopped: bool,
}

/// How the writer samples: varied enough that a retry writes something else, calm enough for
/// short sentences (the small models' own recommended settings sit around these).
fn sampling(seed: u64) -> Sampling {
    Sampling {
        temperature: Some(0.6),
        top_p: 0.9,
        top_k: 40,
        repetition_penalty: 1.15,
        seed,
    }
}

/// Tokens the writer never takes, and the tokens that end a piece.
struct Vocabulary {
    banned: Vec<bool>,
    ends_line: Vec<bool>,
}

impl Vocabulary {
    fn of(model: &LanguageModel) -> Result<Self> {
        let size = model.config.vocab_size;
        let mut banned = vec![false; size];
        let mut ends_line = vec![false; size];
        for id in 0..size as u32 {
            let text = model.tokenizer.decode(&[id])?;
            if model.end_ids.contains(&id) || text.contains('\n') {
                ends_line[id as usize] = true;
            } else if text.is_empty() || stories::writer::unsuitable(&text).is_some() {
                // Special tokens (they decode to nothing) and the list's one-token words.
                banned[id as usize] = true;
            }
        }
        Ok(Vocabulary { banned, ends_line })
    }
}

/// Writes `idea` with `model`; the same seed writes the same story on the same device.
pub async fn write_story(
    model: &LanguageModel,
    idea: &StoryIdea,
    seed: u64,
    mut on_progress: impl FnMut(Written<'_>) -> Next,
) -> Result<StoryOutcome> {
    idea.check().map_err(EngineError::Usage)?;
    let started = web_time::Instant::now();
    let vocabulary = Vocabulary::of(model)?;
    let messages = idea
        .messages()
        .map(|(role, content)| Message::new(role, &content));
    let prompt = match &model.chat_template {
        Some(template) => template.render(&messages, true)?,
        // A model without a template reads the instructions as plain text.
        None => format!("{}\n\n{}\n\n", messages[0].content, messages[1].content),
    };
    let mut pending = model.tokenizer.encode_plain(&prompt)?;
    let parts = Part::all(idea.pages);
    let frames: usize = parts
        .iter()
        .map(|part| {
            model
                .tokenizer
                .encode_plain(&idea.frame(*part, true))
                .map(|ids| ids.len() + part.max_tokens() + 1)
        })
        .sum::<Result<usize>>()?;
    let needed = pending.len() + frames;
    if needed > model.config.max_position_embeddings {
        return Err(EngineError::Usage(format!(
            "a story of {} pages needs {needed} tokens of context; this model reads {}: ask for fewer pages",
            idea.pages, model.config.max_position_embeddings
        )));
    }
    let mut cache = model.cache_for(needed, 0)?;
    let mut history: Vec<u32> = Vec::new();
    let mut kept: Vec<String> = Vec::new();
    let (mut rewrites, mut tokens_written, mut tokens_read) = (0, 0, 0);
    let mut stopped = false;
    'parts: for (index, part) in parts.iter().copied().enumerate() {
        let (start, history_start, before) = (cache.len(), history.len(), pending.clone());
        let mut attempt = 0;
        loop {
            // Later tries of a page's text start it with the child's name.
            let naming = matches!(part, Part::Text(_)) && attempt >= TRIES / 2;
            let mut reading = before.clone();
            reading.extend(model.tokenizer.encode_plain(&idea.frame(part, naming))?);
            tokens_read += reading.len();
            history.extend(&reading);
            let mut logits = model.read(&reading, &mut cache).await?;
            let mut sampler = Sampler::new(sampling(
                seed.wrapping_mul(1_000_003)
                    .wrapping_add((index * TRIES + attempt) as u64),
            ));
            let mut ids: Vec<u32> = Vec::new();
            let mut tail = String::new();
            let mut unread = None;
            while ids.len() < part.max_tokens() {
                let may_end = ids.len() >= part.min_tokens();
                for (id, score) in logits.iter_mut().enumerate() {
                    if vocabulary.banned[id] || (!may_end && vocabulary.ends_line[id]) {
                        *score = f32::NEG_INFINITY;
                    }
                }
                let id = sampler.next(logits, &history);
                tokens_written += 1;
                if vocabulary.ends_line[id as usize] {
                    // Its text before the newline still belongs to the piece (".\n").
                    if !model.end_ids.contains(&id) {
                        let text = model.tokenizer.decode(&[id])?;
                        tail = text.split('\n').next().unwrap_or_default().to_owned();
                    }
                    break;
                }
                ids.push(id);
                history.push(id);
                let draft = model.tokenizer.decode(&ids)?;
                let shown = idea.draft(part, &draft, naming);
                if on_progress(Written::Piece {
                    part,
                    text: &shown,
                    kept: false,
                }) == Next::Stop
                {
                    stopped = true;
                    break 'parts;
                }
                // Short pages: the piece ends with its last sentence's full stop.
                let sentences = draft.matches(['.', '!', '?']).count();
                if ids.len() == part.max_tokens()
                    || (sentences >= part.max_sentences() && ids.len() >= part.min_tokens())
                {
                    unread = Some(id);
                    break;
                }
                crate::runtime::yield_now().await;
                logits = model.read(&[id], &mut cache).await?;
            }
            let written = model.tokenizer.decode(&ids)? + &tail;
            match idea.finish(part, &written, naming) {
                Ok(text) => {
                    let shown = idea.draft(part, &text, false);
                    if on_progress(Written::Piece {
                        part,
                        text: &shown,
                        kept: true,
                    }) == Next::Stop
                    {
                        stopped = true;
                    }
                    kept.push(text);
                    pending = unread.into_iter().collect();
                    if stopped {
                        break 'parts;
                    }
                    break;
                }
                Err(reason) => {
                    attempt += 1;
                    if attempt == TRIES {
                        return Err(EngineError::Usage(format!(
                            "the writer could not write {} suitably for a toddler in {TRIES} tries (the last {reason}); \
                             try the idea in other words, or start from a template",
                            part.describe()
                        )));
                    }
                    rewrites += 1;
                    if on_progress(Written::Rewriting {
                        part,
                        reason: &reason,
                    }) == Next::Stop
                    {
                        stopped = true;
                        break 'parts;
                    }
                    cache.truncate(start);
                    history.truncate(history_start);
                }
            }
        }
    }
    let mut pieces = kept.into_iter();
    let title = pieces.next().unwrap_or_default();
    let mut pages = Vec::new();
    while let Some(text) = pieces.next() {
        let scene = pieces.next().unwrap_or_default();
        pages.push(WrittenPage { text, scene });
    }
    Ok(StoryOutcome {
        story: idea.named(&WrittenStory { title, pages }),
        rewrites,
        tokens_written,
        tokens_read,
        seconds: started.elapsed().as_secs_f64(),
        stopped,
    })
}
