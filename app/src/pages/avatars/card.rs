//! One avatar on the Avatars screen: its preview and progress, and what the parent can do with
//! it (continue learning, start a story, rename, export, delete).

use leptos::prelude::*;
use protocol::store::{AVATARS_DIR, avatar_folder};
use stories::Avatar;

use crate::components::icon::IconName;
use crate::components::stored_picture::StoredPicture;
use crate::pages::avatars::avatar_file::export_avatar;
use crate::pages::avatars::training::{AvatarTraining, run_training};
use crate::pages::story::story_with_avatar;
use crate::storage::{self, AVATAR_PREVIEW};
use crate::studio::{self, avatar_path};

/// An avatar's card; its errors go to the screen's `error`.
#[component]
pub fn AvatarCard(
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
            if let Err(message) = export_avatar(&avatar).await {
                error.try_set(Some(message));
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
            <StoredPicture path=Some(avatar_path(&token, AVATAR_PREVIEW)) alt=format!("Preview of {}", avatar.name)
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
