//! The "Make an avatar" form: a name, what the child looks like, 3 to 10 photos each with its
//! square, the stronger likeness; then the photos are stored and training starts.

use leptos::prelude::*;
use protocol::store::{AVATARS_DIR, avatar_folder};
use protocol::{Event, Request};
use std::collections::BTreeMap;
use stories::Avatar;
use wasm_bindgen::JsCast;

use crate::components::photo_crop::{ChosenPhoto, PhotoCropper};
use crate::engine::EngineWorker;
use crate::pages::avatars::training::{AvatarTraining, run_training};
use crate::storage::{self, AVATAR_CROPS, AVATAR_PHOTOS};
use crate::studio::{self, Preferences, avatar_path};

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

/// The form that makes a new avatar and starts its training.
#[component]
pub fn NewAvatar(work: AvatarTraining, error: RwSignal<Option<String>>) -> impl IntoView {
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
            &avatar_path(&avatar.token, &format!("{AVATAR_PHOTOS}/{name}")),
            &bytes,
        )
        .await?;
        if let Some(crop) = photo.crop() {
            crops.insert(name, crop);
        }
    }
    storage::write_json(&avatar_path(&avatar.token, AVATAR_CROPS), &crops).await?;
    studio::save_avatar(avatar).await
}
