//! Avatars: the children (and pets) who star in the books, learned on this device from a few
//! photos. The photos are copied into the app's private storage and never leave the device.
//!
//! The screen is here; the form that makes an avatar, the avatar cards, the training run and the
//! avatar file (export, import) each have their own module.

mod avatar_file;
mod card;
mod new_avatar;
pub mod training;

use leptos::prelude::*;

use crate::components::device_check::{SlowDeviceNote, SlowWork};
use crate::components::error_note::ErrorNote;
use crate::pages::avatars::avatar_file::import_avatar;
use crate::pages::avatars::card::AvatarCard;
use crate::pages::avatars::new_avatar::NewAvatar;
use crate::pages::avatars::training::{AvatarTraining, TrainingPanel};
use crate::storage;
use crate::studio;

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
