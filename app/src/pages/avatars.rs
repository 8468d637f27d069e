//! Avatars: the children (and pets) who star in the books, learned on this device from a few
//! photos. The photos are copied into the app's private storage and never leave the device.

use leptos::prelude::*;
use protocol::store::{AVATAR_FILE, AVATAR_LORA_FILE, AVATARS_DIR, avatar_folder};
use protocol::{Event, ModelSource, PhotoCrop, Request};
use std::collections::BTreeMap;
use stories::Avatar;
use wasm_bindgen::JsCast;

use crate::components::device_check::{SlowDeviceNote, SlowWork};
use crate::components::icon::IconName;
use crate::components::photo_crop::{ChosenPhoto, PhotoCropper};
use crate::components::stored_picture::StoredPicture;
use crate::engine::EngineWorker;
use crate::pages::story::story_with_avatar;
use crate::storage;
use crate::studio::{self, Preferences, avatar_path};

const PREVIEW: &str = "preview.png";
const PHOTOS: &str = "photos";
/// The parent's squares, by photo file name (`BTreeMap<String, PhotoCrop>` as JSON).
const CROPS: &str = "crops.json";
const MAX_PHOTOS: usize = 10;
/// What the stronger likeness costs, measured (docs/benchmarks.md, "Pivotal tuning"): the extra
/// training time per step, and its LoRA file for SD-Turbo at rank 4.
const LIKENESS_TIME: &str = "a fifth";
const LIKENESS_STORAGE: &str = "3.3 MB";

/// "Looks like a …": the class words the avatar starts from.
const KINDS: [(&str, &str); 5] = [
    ("toddler", "Toddler"),
    ("baby", "Baby"),
    ("child", "Older child"),
    ("puppy", "Dog"),
    ("kitten", "Cat"),
];

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

    fn bump(self) {
        self.changed.update(|changed| *changed += 1);
    }
}

#[component]
pub fn Avatars() -> impl IntoView {
    let work = AvatarTraining::get();
    let avatars = LocalResource::new(move || {
        work.changed.track();
        studio::avatars()
    });
    let error = RwSignal::new(None::<String>);
    let training = work.state;
    let import = move |event: leptos::ev::Event| {
        let files = storage::chosen_files(&event);
        leptos::task::spawn_local(async move {
            for file in files {
                if let Err(message) = import_avatar(&file).await {
                    error.try_set(Some(message));
                }
            }
            work.bump();
        });
    };
    view! {
        <header class="page-header">
            <h1>"Avatars"</h1>
        </header>
        <p class="lead">
            "An avatar teaches the app what your child looks like, from 3 to 10 photos. It learns right here on "
            "this device: the photos are kept in this browser's private storage and never sent anywhere."
        </p>
        <SlowDeviceNote work=SlowWork::Avatar />
        <ErrorNote error />
        <ErrorNote error=work.error />
        <NewAvatar work error />
        {move || training.get().map(|state| view! { <TrainingPanel state /> })}
        <section class="card">
            <h2>"Your avatars"</h2>
            <Suspense fallback=|| view! { <p>"Looking…"</p> }>
                {move || Suspend::new(async move {
                    match avatars.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted" data-testid="no-avatars">"No avatars yet. Make the first one above."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <ul class="card-grid" data-testid="avatar-list">
                                {list.into_iter().map(|avatar| view! {
                                    <AvatarCard avatar work error />
                                }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(message) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
                    }
                })}
            </Suspense>
            <label class="button">
                "Import an avatar file…"
                <input type="file" class="visually-hidden" accept=".safetensors,.zip" data-testid="import-avatar" on:change=import />
            </label>
        </section>
    }
}

#[component]
pub fn ErrorNote(error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error.get().map(|message| {
            view! {
                <div class="notice error" role="alert" data-testid="error">
                    <p>{message}</p>
                    <button class="button" on:click=move |_| error.set(None)>"OK"</button>
                </div>
            }
        })
    }
}

#[component]
fn NewAvatar(work: AvatarTraining, error: RwSignal<Option<String>>) -> impl IntoView {
    let training = work.state;
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new("toddler".to_owned());
    let stronger = RwSignal::new(false);
    let photos = RwSignal::new(Vec::<ChosenPhoto>::new());
    let next_key = StoredValue::new(0u32);
    let resolution = Preferences::read().avatar_resolution;
    // The photos' signals belong to this form, not to the event handler that made them.
    let owner = Owner::current();
    let add = move |event: leptos::ev::Event| {
        let mut chosen = photos.get_untracked();
        let mut left_out = 0;
        for file in storage::chosen_files(&event) {
            if chosen.len() == MAX_PHOTOS {
                left_out += 1;
                continue;
            }
            let key = next_key.get_value();
            next_key.set_value(key + 1);
            let made = match &owner {
                Some(owner) => owner.with(|| ChosenPhoto::new(key, file)),
                None => ChosenPhoto::new(key, file),
            };
            if let Some(photo) = made {
                chosen.push(photo);
            }
        }
        let added: Vec<ChosenPhoto> = chosen[photos.with_untracked(Vec::len)..].to_vec();
        photos.set(chosen);
        leptos::task::spawn_local(look_for_faces(added));
        if left_out > 0 {
            error.set(Some(format!(
                "An avatar learns from up to {MAX_PHOTOS} photos, so {left_out} of those were left out."
            )));
        }
        // The same photo can be chosen again after it was removed.
        if let Some(input) = event
            .target()
            .and_then(|target| target.dyn_into::<web_sys::HtmlInputElement>().ok())
        {
            input.set_value("");
        }
    };
    let remove = Callback::new(move |key: u32| {
        photos.update(|chosen| {
            chosen.retain(|photo| {
                let keep = photo.key != key;
                if !keep {
                    photo.release();
                }
                keep
            })
        })
    });
    let unreadable = Callback::new(move |key: u32| {
        let name = photos
            .get_untracked()
            .iter()
            .find(|photo| photo.key == key)
            .map(|photo| photo.file.name())
            .unwrap_or_default();
        remove.run(key);
        error.set(Some(format!(
            "{name} is not a picture this app can read, so it was left out. Photos in JPEG, PNG or WebP work."
        )));
    });
    let start = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let chosen = photos.get_untracked();
        let name_now = name.get_untracked().trim().to_owned();
        if name_now.is_empty() {
            error.set(Some(
                "Give the avatar a name first, such as your child's first name.".into(),
            ));
            return;
        }
        if !(3..=MAX_PHOTOS).contains(&chosen.len()) {
            error.set(Some(format!(
                "Choose 3 to 10 photos of your child ({} chosen). Clear photos of the face from different days work best.",
                chosen.len()
            )));
            return;
        }
        error.set(None);
        let kind_now = kind.get_untracked();
        let lora_rank = match stronger.get_untracked() {
            true => protocol::STRONGER_LIKENESS_RANK,
            false => 0,
        };
        leptos::task::spawn_local(async move {
            match create_avatar(&name_now, &chosen, lora_rank).await {
                Ok(avatar) => {
                    // The form may be gone by now (the parent moved on): `try_`.
                    name.try_set(String::new());
                    chosen.iter().for_each(ChosenPhoto::release);
                    photos.try_set(Vec::new());
                    work.bump();
                    run_training(avatar, vec![kind_now], work).await;
                }
                Err(message) => {
                    error.try_set(Some(message));
                }
            }
        });
    };
    let busy = move || training.get().is_some();
    view! {
        <section class="card">
            <h2>"Make an avatar"</h2>
            <form class="form" on:submit=start>
                <label>
                    "Name"
                    <input type="text" required maxlength="40" placeholder="Mia" data-testid="avatar-name"
                        prop:value=name on:input=move |event| name.set(event_target_value(&event)) />
                </label>
                <label>
                    "Looks like a"
                    <select data-testid="avatar-kind" on:change=move |event| kind.set(event_target_value(&event))>
                        {KINDS.iter().map(|(words, label)| view! { <option value=*words>{*label}</option> }).collect_view()}
                    </select>
                </label>
                <p class="field-label">"Photos: 3 to 10 in all (JPEG, PNG or WebP)"</p>
                <p class="muted" data-testid="photo-count">
                    {move || match photos.get().len() {
                        0 => "Pick photos where your child's face is clear, from different days if you can.".to_owned(),
                        count => format!(
                            "{count} photo{} chosen. Drag each square onto your child's face and shoulders; drag its corner to resize it.",
                            if count == 1 { "" } else { "s" }
                        ),
                    }}
                </p>
                <ul class="photo-grid">
                    {move || photos.get().into_iter().enumerate().map(|(index, photo)| view! {
                        <PhotoCropper photo number=index + 1 resolution on_remove=remove on_unreadable=unreadable />
                    }).collect_view()}
                </ul>
                <label class="button add-photos">
                    {move || if photos.get().is_empty() { "Choose photos…" } else { "Add more photos…" }}
                    <input type="file" multiple accept="image/jpeg,image/png,image/webp" class="visually-hidden"
                        data-testid="avatar-photos" on:change=add />
                </label>
                <div class="choice">
                    <label class="check">
                        <input type="checkbox" data-testid="stronger-likeness" prop:checked=stronger
                            on:change=move |event| stronger.set(event_target_checked(&event)) />
                        "Stronger likeness"
                    </label>
                    <p class="muted">
                        "Also teaches the picture model itself a little about your child's face (a small add-on, "
                        "called a LoRA), so the face changes less from page to page. Learning takes about "
                        {LIKENESS_TIME}" longer, and the avatar keeps about "{LIKENESS_STORAGE}" on this device "
                        "instead of a few kilobytes."
                    </p>
                </div>
                <button type="submit" class="button primary" data-testid="start-training" disabled=busy>
                    "Start learning"
                </button>
            </form>
        </section>
    }
}

#[component]
fn TrainingPanel(state: TrainingState) -> impl IntoView {
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
        if let (Some(id), Ok(engine)) = (id, EngineWorker::get()) {
            engine.cancel(id);
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

#[component]
fn AvatarCard(
    avatar: Avatar,
    work: AvatarTraining,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let training = work.state;
    let token = avatar.token.clone();
    let finished = avatar.is_ready();
    let fit = avatar.progress_words();
    let stored = StoredValue::new(avatar.clone());
    let renaming = RwSignal::new(false);
    let new_name = RwSignal::new(avatar.name.clone());
    let rename = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let mut avatar = stored.get_value();
        avatar.name = new_name.get_untracked().trim().to_owned();
        if avatar.name.is_empty() {
            return;
        }
        avatar.updated = storage::now();
        leptos::task::spawn_local(async move {
            if let Err(message) = studio::save_avatar(&avatar).await {
                error.try_set(Some(message));
            }
            renaming.try_set(false);
            work.bump();
        });
    };
    let delete = move |_| {
        let avatar = stored.get_value();
        if !storage::confirm(&format!(
            "Delete the avatar {} and its photos from this device? Books keep their pictures.",
            avatar.name
        )) {
            return;
        }
        leptos::task::spawn_local(async move {
            let folder = format!("{AVATARS_DIR}/{}", avatar_folder(&avatar.token));
            if let Err(message) = storage::remove(&folder).await {
                error.try_set(Some(message));
            }
            work.bump();
        });
    };
    let export = move |_| {
        let avatar = stored.get_value();
        leptos::task::spawn_local(async move {
            match storage::read(&avatar_path(&avatar.token, AVATAR_FILE)).await {
                Ok(Some(bytes)) => {
                    let stem = avatar.name.replace(['/', '\\'], "-");
                    let lora = storage::read(&avatar_path(&avatar.token, AVATAR_LORA_FILE)).await;
                    // With its LoRA the avatar is two files (diffusers' own names), in one zip.
                    let saved = match lora {
                        Ok(Some(lora)) => {
                            let archive = crate::zip::stored(&[
                                (AVATAR_FILE.to_owned(), bytes),
                                (AVATAR_LORA_FILE.to_owned(), lora),
                            ]);
                            storage::download(&archive, &format!("{stem}.zip"), "application/zip")
                        }
                        Ok(None) => storage::download(
                            &bytes,
                            &format!("{stem}.safetensors"),
                            "application/octet-stream",
                        ),
                        Err(message) => Err(message),
                    };
                    if let Err(message) = saved {
                        error.try_set(Some(message));
                    }
                }
                Ok(None) => {
                    error.try_set(Some(
                        "This avatar has no file yet: let it finish learning first.".into(),
                    ));
                }
                Err(message) => {
                    error.try_set(Some(message));
                }
            }
        });
    };
    let resume = move |_| {
        let avatar = stored.get_value();
        leptos::task::spawn_local(run_training(avatar, vec!["toddler".into()], work));
    };
    let busy = move || training.get().is_some();
    view! {
        <li class="card avatar-card" data-testid="avatar-card" data-token=token.clone()>
            <StoredPicture path=Some(avatar_path(&token, PREVIEW)) alt=format!("Preview of {}", avatar.name)
                placeholder=IconName::Avatar />
            {move || if renaming.get() {
                view! {
                    <form class="inline-form" on:submit=rename>
                        <label class="visually-hidden" for="rename">"New name"</label>
                        <input id="rename" type="text" maxlength="40" prop:value=new_name
                            on:input=move |event| new_name.set(event_target_value(&event)) />
                        <button class="button" type="submit">"Save"</button>
                    </form>
                }.into_any()
            } else {
                view! { <h3 data-testid="avatar-title">{stored.get_value().name}</h3> }.into_any()
            }}
            <p class="muted" data-testid="avatar-progress">{fit}</p>
            {stories::avatar_face_words(&avatar).map(|words| view! {
                <p class="muted" data-testid="avatar-likeness">{words}</p>
            })}
            <div class="actions">
                {(!finished).then(|| view! {
                    <button class="button primary" on:click=resume disabled=busy data-testid="resume-training">"Continue learning"</button>
                })}
                {finished.then(|| view! {
                    <leptos_router::components::A href=story_with_avatar(&token) attr:class="button primary">"Start a story"</leptos_router::components::A>
                })}
                <button class="button" on:click=move |_| renaming.set(true)>"Rename"</button>
                <button class="button" on:click=export disabled=move || !finished data-testid="export-avatar">"Export"</button>
                <button class="button danger" on:click=delete data-testid="delete-avatar">"Delete"</button>
            </div>
        </li>
    }
}

/// Asks the engine which of the newly chosen photos show a face, so a parent hears before
/// training which photos will not help. The engine reads the photos' object URLs in this
/// browser; if it cannot look, nothing is said.
async fn look_for_faces(photos: Vec<ChosenPhoto>) {
    if photos.is_empty() {
        return;
    }
    let Ok(engine) = EngineWorker::get() else {
        return;
    };
    let id = engine.next_id();
    let request = Request::FindFaces {
        id,
        pictures: photos.iter().map(|photo| photo.url().to_owned()).collect(),
        backend: None,
        describe: false,
    };
    if let Ok((Event::FacesFound { pictures, .. }, _)) = engine.call(id, &request, |_| {}).await {
        for (photo, faces) in photos.iter().zip(pictures) {
            photo.set_face_found(!faces.is_empty());
        }
    }
}

/// Stores the photos and the avatar's record; training starts after.
async fn create_avatar(
    name: &str,
    photos: &[ChosenPhoto],
    lora_rank: usize,
) -> Result<Avatar, String> {
    let taken: Vec<String> = studio::avatars()
        .await?
        .into_iter()
        .map(|avatar| avatar.token)
        .collect();
    let preferences = Preferences::read();
    let avatar = Avatar {
        name: name.to_owned(),
        token: Avatar::token_for(name, &taken),
        photos: photos.len(),
        steps: preferences.avatar_steps,
        resolution: preferences.avatar_resolution,
        eval_loss_before: None,
        eval_loss_after: None,
        updated: storage::now(),
        lora_rank,
        face: None,
        photos_without_face: Vec::new(),
        preview_likeness: None,
    };
    if let Err(message) = store_avatar(&avatar, photos).await {
        // Half an avatar (storage filled up midway) would only take space. The chosen photos
        // stay in the form, to try again after making room.
        let _ = storage::remove(&format!("{AVATARS_DIR}/{}", avatar_folder(&avatar.token))).await;
        return Err(message);
    }
    Ok(avatar)
}

/// Copies the photos into the avatar's folder with their squares, then its record.
async fn store_avatar(avatar: &Avatar, photos: &[ChosenPhoto]) -> Result<(), String> {
    let mut crops = BTreeMap::new();
    for (index, photo) in photos.iter().enumerate() {
        let extension = photo
            .file
            .name()
            .rsplit_once('.')
            .map(|(_, extension)| extension.to_ascii_lowercase())
            .unwrap_or_else(|| "jpg".into());
        let name = format!("photo-{index}.{extension}");
        let bytes = storage::file_bytes(&photo.file).await?;
        storage::write(
            &avatar_path(&avatar.token, &format!("{PHOTOS}/{name}")),
            &bytes,
        )
        .await?;
        if let Some(crop) = photo.crop() {
            crops.insert(name, crop);
        }
    }
    storage::write_json(&avatar_path(&avatar.token, CROPS), &crops).await?;
    studio::save_avatar(avatar).await
}

/// Trains (or resumes) `avatar` in the worker, showing progress in the app's training state.
async fn run_training(avatar: Avatar, init_words: Vec<String>, work: AvatarTraining) {
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
    let photo_folder = avatar_path(&avatar.token, PHOTOS);
    // In the order they were chosen (photo-0 … photo-9): the face finder's advice names them so.
    let mut names = storage::list(&photo_folder).await?;
    names.sort();
    let mut crops_by_name: BTreeMap<String, PhotoCrop> =
        storage::read_json(&avatar_path(&avatar.token, CROPS))
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
        precision: Preferences::read().precision,
        training: protocol::Training {
            photos,
            token: avatar.token.clone(),
            init_words,
            vectors: 2,
            steps: avatar.steps,
            learning_rate: 5e-3,
            resolution: avatar.resolution,
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
                    storage::write(&avatar_path(&avatar.token, PREVIEW), &png).await?;
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
                studio::save_avatar(&avatar).await?;
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

/// Imports a `learned_embeds.safetensors` (this app's export, or diffusers'): its token and
/// vector count come from the file.
async fn import_avatar(file: &web_sys::File) -> Result<(), String> {
    let bytes = storage::file_bytes(file).await?;
    let not_avatar = || {
        format!(
            "{} is not an avatar file. Avatar files end in .safetensors or .zip and come from the Export button.",
            file.name()
        )
    };
    // A zip: an avatar with its LoRA (the stronger likeness), as Export writes it.
    let (bytes, lora) = if bytes.starts_with(b"PK") {
        let mut entries = crate::zip::read_stored(&bytes)
            .map_err(|problem| format!("{}: {problem}.", file.name()))?;
        let mut take = |name: &str| {
            entries
                .iter()
                .position(|(entry, _)| entry == name)
                .map(|index| entries.swap_remove(index).1)
        };
        let embedding = take(AVATAR_FILE).ok_or_else(not_avatar)?;
        (embedding, take(AVATAR_LORA_FILE))
    } else {
        (bytes, None)
    };
    if let Some(lora) = &lora
        && !crate::safetensors::looks_like_lora(lora)
    {
        return Err(format!(
            "{}: its {AVATAR_LORA_FILE} is not a LoRA file this app can read.",
            file.name()
        ));
    }
    let (token, metadata) = read_avatar_file(&bytes).ok_or_else(not_avatar)?;
    // The engine reads both files now, so a damaged one is refused before anything is stored.
    let unusable =
        |message: String| format!("{} cannot be used as an avatar: it {message}", file.name());
    studio::check_file(&bytes, &file.name(), protocol::FileKind::Embedding)
        .await
        .map_err(unusable)?;
    if let Some(lora) = &lora {
        studio::check_file(lora, &file.name(), protocol::FileKind::Lora)
            .await
            .map_err(unusable)?;
    }
    let taken: Vec<String> = studio::avatars()
        .await?
        .into_iter()
        .map(|avatar| avatar.token)
        .collect();
    if taken.contains(&token) {
        return Err(format!(
            "An avatar with the token {token} is already here; delete it first to replace it."
        ));
    }
    let name = file
        .name()
        .trim_end_matches(".safetensors")
        .trim_end_matches(".zip")
        .to_owned();
    let number = |key: &str| {
        metadata
            .get(key)
            .and_then(|value| value.as_str())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    let avatar = Avatar {
        name: if name.is_empty() { token.clone() } else { name },
        token: token.clone(),
        photos: 0,
        steps: number("steps"),
        resolution: number("resolution"),
        eval_loss_before: Some(0.0),
        eval_loss_after: Some(0.0),
        updated: storage::now(),
        lora_rank: lora.as_deref().map_or(0, crate::safetensors::lora_rank),
        face: None,
        photos_without_face: Vec::new(),
        preview_likeness: None,
    };
    if let Some(lora) = &lora {
        storage::write(&avatar_path(&token, AVATAR_LORA_FILE), lora).await?;
    }
    storage::write(&avatar_path(&token, AVATAR_FILE), &bytes).await?;
    studio::save_avatar(&avatar).await
}

/// The token (the first tensor's name, as diffusers writes it) and metadata of an avatar file.
fn read_avatar_file(bytes: &[u8]) -> Option<(String, serde_json::Map<String, serde_json::Value>)> {
    let header = crate::safetensors::header(bytes)?;
    let metadata = header
        .get("__metadata__")
        .and_then(|metadata| metadata.as_object())
        .cloned()
        .unwrap_or_default();
    let token = header.keys().find(|key| *key != "__metadata__")?.clone();
    (token.starts_with('<') || metadata.contains_key("token")).then_some((token, metadata))
}
