//! The picture model: download once (or import from a folder), then draw offline.

use std::collections::{HashMap, HashSet};

use leptos::prelude::*;
use leptos_router::components::A;
use wasm_bindgen::JsCast;

use crate::components::device_check::DeviceCheck;
use crate::engine::EngineFailure;
use crate::estimate::{self, Estimates};
use crate::model_store::{self, ModelEntry, Progress, Stored, format_bytes};

#[component]
pub fn Models() -> impl IntoView {
    let registry = model_store::registry();
    provide_context(Estimates::measure(
        registry
            .models
            .iter()
            .filter(|model| model.role == "pipeline")
            .cloned()
            .collect(),
    ));
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
            {registry.models.iter().filter(|model| model.role != "writer").cloned()
                .map(|model| view! { <ModelCard model /> }).collect_view()}
        </div>
        <h2>"Story writer (optional)"</h2>
        <p class="lead">
            "The story writer turns your one-line idea into a book's pages, on this device: your "
            "child's name and story are never sent anywhere. The story templates work without it."
        </p>
        <div class="model-list">
            {registry.models.iter().filter(|model| model.role == "writer").cloned()
                .map(|model| view! { <ModelCard model /> }).collect_view()}
        </div>
        <p class="muted">
            "Downloading from your own copy of the model hub? Set its address in "
            <A href="/settings">"Settings"</A>"."
        </p>
        <DeviceCheck />
    }
}

/// What the model will take here, in a parent's words.
#[component]
fn EstimateNote(model: ModelEntry) -> impl IntoView {
    let estimates = expect_context::<Estimates>();
    let repo = model.repo.clone();
    let name = model.name.clone();
    move || {
        let Some(result) = estimates.of(&repo) else {
            return view! {
                <p class="estimate" data-testid="model-estimate" data-state="measuring" aria-live="polite">
                    "Working out how fast this device can run it…"
                </p>
            }
            .into_any();
        };
        let estimated = match result {
            Ok(estimated) => estimated,
            Err(_) => {
                return view! {
                    <p class="estimate muted" data-testid="model-estimate" data-state="unknown">
                        "How fast this model runs here is worked out once the app can read its description from the model host."
                    </p>
                }
                .into_any();
            }
        };
        let estimate = &estimated.estimate;
        let limit = estimate.memory_limit_bytes.map(format_bytes);
        let path = estimate::path_words(&estimated.device);
        if !estimate.draws() {
            let instead = estimates.smaller_than(&repo).map(|(smaller, its)| {
                format!(
                    "{} is smaller: it draws a page here in {}.",
                    smaller.name,
                    estimate::about(its.estimate.picture_seconds)
                )
            });
            let text = format!(
                "{name} needs about {} of memory to draw, more than this browser can give it here ({}). {}",
                format_bytes(estimate.picture_memory_bytes),
                limit.unwrap_or_default(),
                instead.unwrap_or_else(|| "No picture model fits this device.".to_owned()),
            );
            return view! {
                <p class="estimate notice" data-testid="model-estimate" data-state="too-big" role="note">{text}</p>
            }
            .into_any();
        }
        let avatar = if estimate.learns() {
            format!(
                "learning an avatar takes {}.",
                estimate::about(estimate.avatar_seconds)
            )
        } else {
            format!(
                "learning an avatar needs about {}, more than this browser can give ({}): learn avatars on another device and import them here.",
                format_bytes(estimate.avatar_memory_bytes),
                limit.unwrap_or_default()
            )
        };
        let text = format!(
            "This device runs {name} {path}. It can draw a page in {}; {avatar} It needs about {} of memory.",
            estimate::about(estimate.picture_seconds),
            format_bytes(estimate.picture_memory_bytes),
        );
        view! {
            <p
                class="estimate"
                data-testid="model-estimate"
                data-state="fits"
                data-picture-seconds=estimate.picture_seconds.to_string()
                data-avatar-seconds=estimate.avatar_seconds.to_string()
            >
                {text}
            </p>
        }
        .into_any()
    }
}

/// Downloads and imports go on while the parent uses other screens (a model is gigabytes), so
/// their state belongs to the app, not to the Models page.
#[derive(Clone, Copy)]
pub struct ModelWork {
    /// Models being fetched now, by repo.
    running: RwSignal<HashSet<String>>,
    /// What has arrived of each model fetched since the app opened, by repo.
    progress: RwSignal<HashMap<String, Progress>>,
    /// Why the last download or import of a repo stopped.
    errors: RwSignal<HashMap<String, String>>,
    /// Bumped whenever a stored model changes, so its status is read again.
    changed: RwSignal<u32>,
}

impl ModelWork {
    /// Called once by the app frame, whose owner lives as long as the page.
    pub fn provide() {
        provide_context(ModelWork {
            running: RwSignal::new(HashSet::new()),
            progress: RwSignal::new(HashMap::new()),
            errors: RwSignal::new(HashMap::new()),
            changed: RwSignal::new(0),
        });
    }

    fn get() -> ModelWork {
        expect_context()
    }

    fn busy(self, repo: &str) -> bool {
        self.running.with(|running| running.contains(repo))
    }

    /// Marks `repo` as being fetched; `false` if it already was.
    fn begin(self, repo: &str) -> bool {
        let mut began = false;
        self.running
            .update(|running| began = running.insert(repo.to_owned()));
        began
    }

    fn report(self, repo: &str, now: &Progress) {
        self.progress.update(|progress| {
            progress.insert(repo.to_owned(), now.clone());
        });
    }

    /// Records how a download or import of `repo` ended.
    fn finish(self, repo: &str, result: Result<(), String>) {
        self.running.update(|running| {
            running.remove(repo);
        });
        self.errors.update(|errors| match result {
            Ok(()) => {
                errors.remove(repo);
            }
            Err(message) => {
                errors.insert(repo.to_owned(), message);
            }
        });
        self.changed.update(|changed| *changed += 1);
    }

    /// Downloads `model`; the default picture model brings the default fast decoder along
    /// (a few MB), which every picture is then decoded with.
    fn download(self, model: ModelEntry) {
        if !self.begin(&model.repo) {
            return;
        }
        leptos::task::spawn_local(async move {
            let check = async || check_with_engine(&model).await;
            let result =
                model_store::download(&model, |now| self.report(&model.repo, now), check).await;
            let fetched = result.is_ok();
            self.finish(&model.repo, result);
            let registry = model_store::registry();
            if fetched
                && model.repo == registry.default_model
                && let Some(decoder) = registry
                    .models
                    .iter()
                    .find(|entry| entry.repo == registry.default_decoder)
                && !matches!(model_store::status(decoder).await, Ok(Stored::Ready { .. }))
                && self.begin(&decoder.repo)
            {
                let result = model_store::download(
                    decoder,
                    |now| self.report(&decoder.repo, now),
                    async || Ok(()),
                )
                .await;
                self.finish(&decoder.repo, result);
            }
        });
    }

    fn import(self, model: ModelEntry, files: Vec<web_sys::File>) {
        if !self.begin(&model.repo) {
            return;
        }
        leptos::task::spawn_local(async move {
            let check = async || check_with_engine(&model).await;
            let result =
                model_store::import(&model, files, |now| self.report(&model.repo, now), check)
                    .await;
            self.finish(&model.repo, result);
        });
    }
}

/// The engine's look at a pipeline's small files, already in the store (a decoder alone is
/// checked when a model loads it).
async fn check_with_engine(model: &ModelEntry) -> Result<(), EngineFailure> {
    if model.role != "pipeline" {
        return Ok(());
    }
    let engine = crate::engine::EngineWorker::get().map_err(EngineFailure::Stopped)?;
    let id = engine.next_id();
    let request = protocol::Request::CheckModel {
        id,
        source: protocol::ModelSource::Stored {
            folder: model.folder(),
        },
    };
    engine.call(id, &request, |_| {}).await.map(|_| ())
}

#[component]
fn ModelCard(model: ModelEntry) -> impl IntoView {
    let work = ModelWork::get();
    let slug = model.repo.replace('/', "-");
    let deleting = RwSignal::new(false);
    let repo = StoredValue::new(model.repo.clone());
    let model = StoredValue::new(model);
    // What the store holds of this model, read again whenever a stored model changes; `None`
    // until first read.
    let stored = LocalResource::new(move || {
        work.changed.track();
        // A value, not the card's stored one: the parent may leave the page before this ends.
        let entry = model.get_value();
        async move {
            model_store::status(&entry).await.unwrap_or_else(|message| {
                work.errors.update(|errors| {
                    errors.insert(entry.repo.clone(), message);
                });
                Stored::Missing
            })
        }
    });
    let progress = move || {
        work.progress
            .with(|progress| progress.get(&repo.get_value()).cloned())
    };
    let error = move || {
        work.errors
            .with(|errors| errors.get(&repo.get_value()).cloned())
    };
    let busy = move || deleting.get() || work.busy(&repo.get_value());
    let start_download = move |_| work.download(model.get_value());
    // A first download starts with the real size, from the host (the registry's figure is an
    // estimate), and the parent's yes: a model is gigabytes, perhaps on a phone's data plan.
    let offered_bytes = RwSignal::new(None::<u64>);
    let asking = RwSignal::new(false);
    let ask_size = move |_| {
        asking.set(true);
        let entry = model.get_value();
        leptos::task::spawn_local(async move {
            match model_store::host_bytes(&entry).await {
                Ok(bytes) => {
                    offered_bytes.try_set(Some(bytes));
                }
                Err(message) => work.errors.update(|errors| {
                    errors.insert(entry.repo.clone(), message);
                }),
            }
            asking.try_set(false);
        });
    };
    let confirm_download = move |_| {
        offered_bytes.set(None);
        work.download(model.get_value());
    };
    let offer_text = move || {
        offered_bytes.get().map(|bytes| {
            format!(
                "{} is {} on the model host. It downloads once; after that the app {} offline.",
                model.get_value().name,
                format_bytes(bytes),
                if model.get_value().role == "writer" {
                    "writes"
                } else {
                    "draws"
                }
            )
        })
    };
    let confirm_label = move || {
        format!(
            "Download {}",
            format_bytes(offered_bytes.get().unwrap_or_default())
        )
    };
    let delete = move |_| {
        deleting.set(true);
        let entry = model.get_value();
        leptos::task::spawn_local(async move {
            let result = model_store::delete(&entry).await;
            work.progress.update(|progress| {
                progress.remove(&entry.repo);
            });
            deleting.try_set(false);
            work.finish(&entry.repo, result);
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
        work.import(model.get_value(), files);
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
            <h2>{entry.name.clone()} {entry.is_default().then_some(" (default)")}</h2>
            <p>{entry.description.clone()}</p>
            {(entry.role == "pipeline").then(|| view! { <EstimateNote model=entry.clone() /> })}
            {(entry.repo == model_store::registry().default_model).then(|| view! {
                <p class="muted">"Downloading it also fetches the default fast decoder, which finishes every picture in a fraction of the time."</p>
            })}
            {entry.defaults.clone().map(|defaults| view! {
                <p class="muted">
                    {format!(
                        "Draws {} × {} in {} step{} (guidance {}).",
                        defaults.width,
                        defaults.height,
                        defaults.steps,
                        if defaults.steps == 1 { "" } else { "s" },
                        defaults.guidance
                    )}
                </p>
            })}
            <p class="muted">
                <a href=entry.licence.clone() target="_blank" rel="noopener">"Licence"</a>
                {format!(" · {} · {}", entry.repo, entry.revision)}
            </p>
            <p data-testid="model-status" aria-live="polite">{status_text}</p>
            // A download that left nothing behind (refused, or deleted) shows no progress.
            {move || progress().filter(|_| busy() || !matches!(stored.get(), Some(Stored::Missing))).map(|progress| view! {
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
            {move || error().map(|message| view! { <p class="error" role="alert" data-testid="model-error">{message}</p> })}
            <div class="actions">
                <Show when=move || matches!(stored.get(), Some(Stored::Missing)) && offered_bytes.get().is_none()>
                    <button class="button primary" data-testid="model-download" disabled=move || busy() || asking.get() on:click=ask_size>
                        {move || if asking.get() { "Asking the host for its size…" } else { "Download" }}
                    </button>
                </Show>
                <Show when=move || offered_bytes.get().is_some()>
                    <p class="download-offer" data-testid="model-offer">{offer_text}</p>
                    <button class="button primary" data-testid="model-download-confirm" disabled=busy on:click=confirm_download>{confirm_label}</button>
                    <button class="button" on:click=move |_| offered_bytes.set(None)>"Not now"</button>
                </Show>
                <Show when=move || matches!(stored.get(), Some(Stored::Partial { .. }))>
                    <button class="button primary" data-testid="model-resume" disabled=busy on:click=start_download>"Resume download"</button>
                </Show>
                <Show when=move || matches!(stored.get(), Some(Stored::Partial { .. } | Stored::Ready { .. }))>
                    <button class="button" data-testid="model-delete" disabled=busy on:click=delete>"Delete"</button>
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
    let save = Action::new_local(|value: &String| {
        let base = value.trim().to_owned();
        async move {
            let is_default = base.is_empty() || base == model_store::registry().hub_base;
            match model_store::set_hub_base((!is_default).then_some(base.as_str())).await {
                Ok(()) => "Saved. Reload the app to download from this host.".to_owned(),
                Err(error) => error,
            }
        }
    });
    let message = save.value();
    view! {
        <section class="card">
            <h2>"Model host"</h2>
            <p>"Where models are downloaded from. Leave the default unless you run your own copy of the Hugging Face hub."</p>
            <div class="form">
                <label>
                    "Host address"
                    <input type="url" data-testid="hub-base" prop:value=move || current.get() on:input=move |event| current.set(event_target_value(&event)) />
                </label>
                <button class="button" data-testid="hub-base-save" on:click=move |_| { save.dispatch(current.get_untracked()); }>"Save"</button>
            </div>
            {move || message.get().map(|text| view! { <p aria-live="polite" data-testid="hub-base-message">{text}</p> })}
        </section>
    }
}
