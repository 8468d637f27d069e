//! Avatar training in the engine worker: the app-wide state it reports into (it outlives the
//! Avatars screen), the run itself with its progress and previews, and the panel that shows it.

use leptos::prelude::*;
use protocol::store::{AVATAR_FILE, AVATAR_LORA_FILE};
use protocol::{Event, ModelSource, PhotoCrop, Request};
use std::collections::BTreeMap;
use stories::Avatar;

use crate::engine::EngineWorker;
use crate::storage::{self, AVATAR_CROPS, AVATAR_PHOTOS, AVATAR_PREVIEW};
use crate::studio::{self, Preferences, avatar_path};

/// How far the avatar learning now has got, for the training panel.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingState {
    token: String,
    step: usize,
    steps: usize,
    seconds: f64,
    started_at: usize,
    preview: Option<String>,
    id: Option<u32>,
}

/// Avatar training outlives the Avatars screen — a parent starts it and goes to write a story
/// meanwhile — so its state belongs to the app, not to the page (a page's signals are gone once
/// the parent leaves it, and the training task would then write into nothing).
#[derive(Clone, Copy)]
pub struct AvatarTraining {
    /// The avatar learning now, if any.
    pub state: RwSignal<Option<TrainingState>>,
    /// Why the last training stopped, for the Avatars screen to say.
    pub error: RwSignal<Option<String>>,
    /// Bumped whenever a stored avatar changes, so lists of avatars read them again.
    pub changed: RwSignal<u32>,
}

impl AvatarTraining {
    /// Called once by the app frame, whose owner lives as long as the page.
    pub fn provide() {
        provide_context(AvatarTraining {
            state: RwSignal::new(None),
            error: RwSignal::new(None),
            changed: RwSignal::new(0),
        });
    }

    pub fn get() -> AvatarTraining {
        expect_context()
    }

    /// Tells lists of avatars to read them again.
    pub fn bump(self) {
        self.changed.update(|changed| *changed += 1);
    }
}

/// Trains (or resumes) `avatar` in the worker, showing progress in the app's training state.
pub async fn run_training(avatar: Avatar, init_words: Vec<String>, work: AvatarTraining) {
    let result = train(avatar, init_words, work.state).await;
    work.state.set(None);
    if let Err(message) = result {
        work.error.set(Some(message));
    }
    work.bump();
}

async fn train(
    mut avatar: Avatar,
    init_words: Vec<String>,
    training: RwSignal<Option<TrainingState>>,
) -> Result<(), String> {
    let folder = studio::model_ready().await?;
    let photo_folder = avatar_path(&avatar.token, AVATAR_PHOTOS);
    // In the order they were chosen (photo-0 … photo-9): the face finder's advice names them so.
    let mut names = storage::list(&photo_folder).await?;
    names.sort();
    let mut crops_by_name: BTreeMap<String, PhotoCrop> =
        storage::read_json(&avatar_path(&avatar.token, AVATAR_CROPS))
            .await?
            .unwrap_or_default();
    let crops: Vec<Option<PhotoCrop>> = names
        .iter()
        .map(|name| crops_by_name.remove(name))
        .collect();
    let photos: Vec<String> = names
        .iter()
        .map(|name| format!("opfs:{photo_folder}/{name}"))
        .collect();
    if photos.is_empty() {
        return Err("This avatar's photos are gone; delete it and make it again.".into());
    }
    // On the processor an avatar learns in f16 at a smaller size (in f32 at 512² it needs 14 GB,
    // far past wasm32's 4 GiB; docs/benchmarks.md), in a worker of its own: burn fixes the
    // processor's float type for a worker's life, and pictures are drawn there in f32.
    let on_processor = studio::draws_on_processor().await;
    let (precision, resolution) = if on_processor {
        EngineWorker::restart();
        (
            Some(protocol::Precision::F16),
            avatar.resolution.min(protocol::CPU_AVATAR_RESOLUTION),
        )
    } else {
        (Preferences::read().precision, avatar.resolution)
    };
    let result = train_in_worker(
        &mut avatar,
        init_words,
        photos,
        crops,
        folder,
        (precision, resolution),
        training,
    )
    .await;
    if on_processor {
        EngineWorker::restart();
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn train_in_worker(
    avatar: &mut Avatar,
    init_words: Vec<String>,
    photos: Vec<String>,
    crops: Vec<Option<PhotoCrop>>,
    folder: String,
    (precision, resolution): (Option<protocol::Precision>, usize),
    training: RwSignal<Option<TrainingState>>,
) -> Result<(), String> {
    let engine = EngineWorker::get()?;
    let id = engine.next_id();
    training.set(Some(TrainingState {
        token: avatar.name.clone(),
        step: 0,
        steps: avatar.steps,
        seconds: 0.0,
        started_at: 0,
        preview: None,
        id: Some(id),
    }));
    let request = Request::TrainAvatar {
        id,
        source: ModelSource::Stored { folder },
        decoder: studio::decoder().await,
        backend: Preferences::read().backend,
        precision,
        training: protocol::Training {
            photos,
            token: avatar.token.clone(),
            init_words,
            vectors: 2,
            steps: avatar.steps,
            learning_rate: 5e-3,
            resolution,
            seed: 0,
            checkpoint_every: 10.min(avatar.steps.max(1)),
            preview_every: (avatar.steps / 5).max(1),
            crops,
            gradient_checkpointing: None,
            lora_rank: avatar.lora_rank,
            likeness: true,
        },
    };
    let mut events = engine.send(id, &request);
    let mut first_step = None;
    use futures::StreamExt;
    while let Some((event, bytes)) = events.next().await {
        match event {
            Event::TrainStep {
                step,
                steps,
                seconds,
                ..
            } => {
                let started_at = *first_step.get_or_insert(step.saturating_sub(1));
                training.update(|state| {
                    if let Some(state) = state {
                        state.step = step;
                        state.steps = steps;
                        state.seconds = seconds;
                        state.started_at = started_at;
                    }
                });
            }
            Event::AvatarPreview { likeness, .. } => {
                avatar.preview_likeness = likeness;
                if let Some(png) = bytes {
                    storage::write(&avatar_path(&avatar.token, AVATAR_PREVIEW), &png).await?;
                    let url = storage::object_url(&png, "image/png");
                    training.update(|state| {
                        if let Some(state) = state {
                            state.preview = url;
                        }
                    });
                }
            }
            Event::AvatarTrained {
                eval_loss_before,
                eval_loss_after,
                embedding_bytes,
                face_reference,
                photos_without_face,
                ..
            } => {
                let file = bytes.ok_or("the engine sent no avatar file")?;
                let (embedding, lora) = file.split_at(embedding_bytes.unwrap_or(file.len()));
                if !lora.is_empty() {
                    storage::write(&avatar_path(&avatar.token, AVATAR_LORA_FILE), lora).await?;
                }
                storage::write(&avatar_path(&avatar.token, AVATAR_FILE), embedding).await?;
                avatar.eval_loss_before = Some(eval_loss_before);
                avatar.eval_loss_after = Some(eval_loss_after);
                avatar.face = face_reference;
                avatar.photos_without_face = photos_without_face;
                avatar.updated = storage::now();
                studio::save_avatar(avatar).await?;
                studio::forget_loaded();
                return Ok(());
            }
            Event::Cancelled { .. } => {
                studio::forget_loaded();
                return Ok(());
            }
            Event::Failed { message, .. } => {
                studio::forget_loaded();
                return Err(message);
            }
            _ => {}
        }
    }
    Err("the picture engine stopped unexpectedly".into())
}

/// Progress, time left, the latest preview and Pause, while an avatar learns.
#[component]
pub fn TrainingPanel(state: TrainingState) -> impl IntoView {
    let done_here = state.step.saturating_sub(state.started_at).max(1) as f64;
    let left = (state.steps.saturating_sub(state.step)) as f64 * state.seconds / done_here;
    let time_left = if state.step == state.started_at {
        "Getting ready…".to_owned()
    } else if left < 90.0 {
        format!("About {:.0} seconds left", left.max(1.0))
    } else {
        format!("About {:.0} minutes left", (left / 60.0).ceil())
    };
    let id = state.id;
    let cancel = move |_| {
        if let Some(id) = id {
            EngineWorker::cancel(id);
        }
    };
    view! {
        <section class="card training" data-testid="training" aria-live="polite">
            <h2>{format!("Learning what {} looks like", state.token)}</h2>
            <progress max=state.steps as f64 value=state.step as f64 data-testid="training-progress"></progress>
            <p>
                <span data-testid="training-step">{format!("Step {} of {}", state.step, state.steps)}</span>
                " · "
                <span data-testid="time-left">{time_left}</span>
            </p>
            {state.preview.map(|url| view! {
                <figure class="preview">
                    <img src=url alt="How the avatar looks so far" data-testid="training-preview" />
                    <figcaption>"How it looks so far"</figcaption>
                </figure>
            })}
            <p class="muted">"You can close the tab: learning continues from the last saved step next time."</p>
            <button class="button" on:click=cancel data-testid="cancel-training">"Pause"</button>
        </section>
    }
}
