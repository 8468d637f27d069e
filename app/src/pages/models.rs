//! The picture model: download once (or import from a folder), then draw offline.

use leptos::prelude::*;
use leptos_router::components::A;
use wasm_bindgen::JsCast;

use crate::components::device_check::DeviceCheck;
use crate::model_store::{self, ModelEntry, Progress, Stored, format_bytes};

#[component]
pub fn Models() -> impl IntoView {
    let registry = model_store::registry();
    view! {
        <header class="page-header">
            <h1>"Picture model"</h1>
        </header>
        <p class="lead">
            "ToddlerStories draws with a picture model that lives on this device. Download it once; "
            "after that the app draws even without an internet connection. Nothing about you or your "
            "child is sent anywhere: the download only fetches the model."
        </p>
        <div class="model-list">
            {registry.models.iter().cloned().map(|model| view! { <ModelCard model /> }).collect_view()}
        </div>
        <p class="muted">
            "Downloading from your own copy of the model hub? Set its address in "
            <A href="/settings">"Settings"</A>"."
        </p>
        <DeviceCheck />
    }
}

#[component]
fn ModelCard(model: ModelEntry) -> impl IntoView {
    let slug = model.repo.replace('/', "-");
    let stored = RwSignal::new(None::<Stored>);
    let progress = RwSignal::new(None::<Progress>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let model = StoredValue::new(model);
    let refresh = move || {
        leptos::task::spawn_local(async move {
            match model_store::status(&model.get_value()).await {
                Ok(status) => stored.set(Some(status)),
                Err(message) => error.set(Some(message)),
            }
        });
    };
    refresh();
    let start_download = move |_| {
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            let result =
                model_store::download(&model.get_value(), |now| progress.set(Some(now.clone())))
                    .await;
            if let Err(message) = result {
                error.set(Some(message));
            }
            busy.set(false);
            refresh();
        });
    };
    let delete = move |_| {
        busy.set(true);
        leptos::task::spawn_local(async move {
            if let Err(message) = model_store::delete(&model.get_value()).await {
                error.set(Some(message));
            }
            progress.set(None);
            busy.set(false);
            refresh();
        });
    };
    let import = move |event: leptos::ev::Event| {
        let Some(input) = event
            .target()
            .and_then(|target| target.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let files: Vec<web_sys::File> = input
            .files()
            .map(|list| {
                (0..list.length())
                    .filter_map(|index| list.get(index))
                    .collect()
            })
            .unwrap_or_default();
        busy.set(true);
        error.set(None);
        leptos::task::spawn_local(async move {
            if let Err(message) = model_store::import(&model.get_value(), files, |now| {
                progress.set(Some(now.clone()))
            })
            .await
            {
                error.set(Some(message));
            }
            busy.set(false);
            refresh();
        });
    };
    // Leptos has no typed `webkitdirectory`; set it once the input exists.
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move || {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
    let entry = model.get_value();
    let status_text = move || match stored.get() {
        None => "Checking…".to_owned(),
        Some(Stored::Missing) => format!(
            "Not on this device (about {})",
            format_bytes(model.get_value().approx_bytes())
        ),
        Some(Stored::Partial { bytes }) => format!("Partly downloaded ({})", format_bytes(bytes)),
        Some(Stored::Ready { bytes }) => format!("Ready on this device ({})", format_bytes(bytes)),
    };
    view! {
        <section class="card model-card" data-testid=format!("model-{slug}")>
            <h2>{entry.name.clone()} {entry.is_default().then_some(if entry.role == "pipeline" { " (default)" } else { " (default fast decoder)" })}</h2>
            <p>{entry.description.clone()}</p>
            {entry.defaults.clone().map(|defaults| view! {
                <p class="muted">
                    {format!(
                        "Draws {} × {} in {} step{} ({}, guidance {}).",
                        defaults.width,
                        defaults.height,
                        defaults.steps,
                        if defaults.steps == 1 { "" } else { "s" },
                        defaults.scheduler,
                        defaults.guidance
                    )}
                </p>
            })}
            <p class="muted">
                <a href=entry.licence.clone() target="_blank" rel="noopener">"Licence"</a>
                {format!(" · {} · {}", entry.repo, entry.revision)}
            </p>
            <p data-testid="model-status" aria-live="polite">{status_text}</p>
            {move || progress.get().map(|progress| view! {
                <div class="download-progress">
                    <label>
                        {format!("{} of {}", format_bytes(progress.done), format_bytes(progress.total))}
                        <progress data-testid="progress-overall" max=progress.total as f64 value=progress.done as f64></progress>
                    </label>
                    <ul class="file-progress">
                        {progress.files.iter().map(|(path, done, total)| view! {
                            <li>
                                <span>{path.clone()}</span>
                                <progress data-testid="progress-file" data-path=path.clone() max=(*total).max(1) as f64 value=*done as f64></progress>
                            </li>
                        }).collect_view()}
                    </ul>
                </div>
            })}
            {move || error.get().map(|message| view! { <p class="error" role="alert" data-testid="model-error">{message}</p> })}
            <div class="actions">
                <Show when=move || matches!(stored.get(), Some(Stored::Missing))>
                    <button class="button primary" data-testid="model-download" disabled=move || busy.get() on:click=start_download>"Download"</button>
                </Show>
                <Show when=move || matches!(stored.get(), Some(Stored::Partial { .. }))>
                    <button class="button primary" data-testid="model-resume" disabled=move || busy.get() on:click=start_download>"Resume download"</button>
                </Show>
                <Show when=move || matches!(stored.get(), Some(Stored::Partial { .. } | Stored::Ready { .. }))>
                    <button class="button" data-testid="model-delete" disabled=move || busy.get() on:click=delete>"Delete"</button>
                </Show>
                <label class="button">
                    "Import from a folder…"
                    <input type="file" class="visually-hidden" data-testid="model-import" multiple node_ref=folder_input on:change=import />
                </label>
            </div>
        </section>
    }
}

/// The parent's own model host (a mirror), for places where the hub is blocked (on Settings).
#[component]
pub fn ModelHost() -> impl IntoView {
    let current = RwSignal::new(model_store::hub_base());
    let message = RwSignal::new(None::<String>);
    let save = move |_| {
        let value = current.get_untracked();
        leptos::task::spawn_local(async move {
            let base = value.trim().to_owned();
            let is_default = base.is_empty() || base == model_store::registry().hub_base;
            let result = model_store::set_hub_base((!is_default).then_some(base.as_str())).await;
            message.set(Some(match result {
                Ok(()) => "Saved. Reload the app to download from this host.".into(),
                Err(error) => error,
            }));
        });
    };
    view! {
        <section class="card">
            <h2>"Model host"</h2>
            <p>"Where models are downloaded from. Leave the default unless you run your own copy of the Hugging Face hub."</p>
            <div class="form">
                <label>
                    "Host address"
                    <input type="url" data-testid="hub-base" prop:value=move || current.get() on:input=move |event| current.set(event_target_value(&event)) />
                </label>
                <button class="button" data-testid="hub-base-save" on:click=save>"Save"</button>
            </div>
            {move || message.get().map(|text| view! { <p aria-live="polite" data-testid="hub-base-message">{text}</p> })}
        </section>
    }
}
