//! Settings: privacy in plain words, what this device can do, and storage.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::components::device_check::DeviceCheck;
use crate::engine::EngineWorker;
use crate::gpu::format_bytes;
use crate::pages::models::ModelHost;
use crate::storage;
use crate::studio::{
    self, BACKEND_KEY, DECODER_KEY, PRECISION_KEY, Preferences, SIZE_KEY, set_preference,
};

#[component]
pub fn Settings() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"Settings"</h1>
        </header>
        <section class="card" data-testid="privacy">
            <h2>"What stays on this device"</h2>
            <p>
                "Everything you make: photos of your child, avatars, stories and pictures. They are stored in this browser "
                "only and are never uploaded. The only thing the app downloads is the picture model."
            </p>
        </section>
        <Choices />
        <ModelHost />
        <DeviceCheck />
        <StorageUse />
        <StorageItems />
        <DeleteEverything />
    }
}

#[component]
fn Choices() -> impl IntoView {
    let preferences = Preferences::read();
    let backend = match preferences.backend {
        protocol::Backend::Auto => "auto",
        protocol::Backend::Webgpu | protocol::Backend::WebgpuDefaultLimits => "webgpu",
        protocol::Backend::Cpu => "cpu",
    };
    let size = preferences.picture_size.to_string();
    let decoder = if preferences.full_decoder {
        "full"
    } else {
        "fast"
    };
    let precision = preferences
        .precision
        .map_or("auto", protocol::Precision::name);
    view! {
        <section class="card form">
            <h2>"Drawing"</h2>
            <LoadingChoice label="Where pictures are drawn" test_id="backend-choice" key=BACKEND_KEY current=backend
                options=&[
                    ("auto", "The graphics chip when there is one (recommended)"),
                    ("webgpu", "The graphics chip (WebGPU)"),
                    ("cpu", "The processor (slow, but works everywhere)"),
                ] />
            <label>
                "Picture size for new books"
                <select data-testid="size-choice" on:change=move |event| set_preference(SIZE_KEY, &event_target_value(&event))>
                    {[512usize, 384, 256].into_iter().chain((![512, 384, 256].contains(&preferences.picture_size)).then_some(preferences.picture_size)).map(|option| {
                        let label = format!("{option} × {option}{}", if option == 512 { " (best)" } else if option < 384 { " (fastest)" } else { "" });
                        view! { <option value=option.to_string() selected=size == option.to_string()>{label}</option> }
                    }).collect_view()}
                </select>
            </label>
            <LoadingChoice label="Picture quality" test_id="decoder-choice" key=DECODER_KEY current=decoder
                options=&[
                    ("fast", "Fast: the small picture decoder (recommended)"),
                    ("full", "Finest pictures: the model's full decoder (each picture takes several times longer)"),
                ] />
            // A running engine keeps its precision: the next picture starts a new one.
            <LoadingChoice label="Number precision" test_id="precision-choice" key=PRECISION_KEY current=precision
                restart_engine=true
                options=&[
                    ("auto", "Automatic: half precision where the graphics chip supports it (recommended)"),
                    ("f16", "Half precision: faster, and the model needs half the memory"),
                    ("f32", "Full precision: slower; for a graphics chip that draws wrong colours in half precision"),
                ] />
        </section>
    }
}

/// A choice of how the model is loaded, kept in the preference `key`: a new value unloads the
/// model, so the next picture loads it the new way.
#[component]
fn LoadingChoice(
    label: &'static str,
    test_id: &'static str,
    key: &'static str,
    /// The value chosen now.
    current: &'static str,
    /// Each option's value and what the parent reads.
    options: &'static [(&'static str, &'static str)],
    /// Also start a fresh engine worker: a worker keeps its precision for its life.
    #[prop(optional)]
    restart_engine: bool,
) -> impl IntoView {
    view! {
        <label>
            {label}
            <select data-testid=test_id on:change=move |event| {
                set_preference(key, &event_target_value(&event));
                studio::forget_loaded();
                if restart_engine {
                    EngineWorker::restart();
                }
            }>
                {options.iter().map(|&(value, text)| view! {
                    <option value=value selected=value == current>{text}</option>
                }).collect_view()}
            </select>
        </label>
    }
}

#[component]
fn StorageItems() -> impl IntoView {
    let items = LocalResource::new(|| async {
        let mut rows = Vec::new();
        for model in &crate::model_store::registry().models {
            let bytes = storage::size(&format!(
                "{}/{}",
                protocol::store::MODELS_DIR,
                model.folder()
            ))
            .await
            .unwrap_or(0);
            if bytes > 0 {
                rows.push((format!("Model: {}", model.name), bytes));
            }
        }
        for avatar in studio::avatars().await.unwrap_or_default() {
            let folder = format!(
                "{}/{}",
                protocol::store::AVATARS_DIR,
                protocol::store::avatar_folder(&avatar.token)
            );
            rows.push((
                format!("Avatar: {} (with its photos)", avatar.name),
                storage::size(&folder).await.unwrap_or(0),
            ));
        }
        for book in studio::books().await.unwrap_or_default() {
            rows.push((
                format!("Book: {}", book.title),
                storage::size(&format!("{}/{}", storage::BOOKS_DIR, book.id))
                    .await
                    .unwrap_or(0),
            ));
        }
        rows
    });
    view! {
        <section class="card" data-testid="storage-items">
            <h2>"What is stored"</h2>
            <Suspense fallback=|| view! { <p>"Measuring…"</p> }>
                {move || Suspend::new(async move {
                    let rows = items.await;
                    if rows.is_empty() {
                        return view! { <p class="muted">"Nothing yet."</p> }.into_any();
                    }
                    view! {
                        <table class="storage-table">
                            <thead><tr><th scope="col">"Item"</th><th scope="col">"Size"</th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|(name, bytes)| view! {
                                    <tr><td>{name}</td><td>{format_bytes(bytes as f64)}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn DeleteEverything() -> impl IntoView {
    // Its value is what the parent reads afterwards.
    let delete_all = Action::new_local(|&()| async {
        let mut problems = Vec::new();
        for folder in [
            storage::BOOKS_DIR,
            protocol::store::AVATARS_DIR,
            protocol::store::MODELS_DIR,
        ] {
            if let Err(message) = storage::remove(folder).await {
                problems.push(message);
            }
        }
        studio::forget_loaded();
        if problems.is_empty() {
            "Everything was deleted from this device.".to_owned()
        } else {
            problems.join(" ")
        }
    });
    let delete = move |_| {
        if storage::confirm(
            "Delete everything ToddlerStories keeps on this device: books, avatars, photos and the picture model? This cannot be undone.",
        ) {
            delete_all.dispatch(());
        }
    };
    let done = delete_all.value();
    view! {
        <section class="card">
            <h2>"Start over"</h2>
            <p>"Deletes every book, avatar and photo, and the picture model, from this device."</p>
            <button class="button danger" on:click=delete data-testid="delete-everything">"Delete everything"</button>
            {move || done.get().map(|message| view! { <p role="status">{message}</p> })}
        </section>
    }
}

#[component]
fn StorageUse() -> impl IntoView {
    let estimate = LocalResource::new(storage_estimate);
    view! {
        <section class="card" data-testid="storage">
            <h2>"Storage"</h2>
            <Suspense fallback=|| view! { <p>"Measuring…"</p> }>
                {move || Suspend::new(async move {
                    match estimate.await {
                        Some((usage, quota)) => format!(
                            "ToddlerStories uses {} of the {} this browser allows it.",
                            format_bytes(usage),
                            format_bytes(quota)
                        ),
                        None => "This browser does not say how much storage it allows.".to_owned(),
                    }
                })}
            </Suspense>
        </section>
    }
}

async fn storage_estimate() -> Option<(f64, f64)> {
    let storage = web_sys::window()?.navigator().storage();
    let estimate = JsFuture::from(storage.estimate().ok()?).await.ok()?;
    let estimate = estimate.unchecked_into::<web_sys::StorageEstimate>();
    Some((estimate.get_usage()?, estimate.get_quota()?))
}
