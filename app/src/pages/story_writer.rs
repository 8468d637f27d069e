//! "Write it with me": the story writer on the Story screen. The parent's idea and page count, the
//! child from the form; the pages appear as the engine worker writes them, can be stopped, and
//! then start the book like a template (edited like any book before anything is drawn).

use leptos::prelude::*;
use leptos_router::components::A;
use protocol::{Backend, Event};
use stories::writer::{DEFAULT_PAGES, MAX_IDEA_CHARS, PAGES, Part, StoryIdea, WrittenStory};
use stories::{Child, Pronouns};

use crate::engine::EngineWorker;
use crate::studio::{self, Preferences};

/// Tokens per second this device wrote its last story at, kept for the next estimate.
const RATE_KEY: &str = "toddler.writer_rate";

/// Roughly how many tokens a story of `pages` pages takes (title, ~2 short sentences and a
/// scene a page), for the time a parent is told.
fn expected_tokens(pages: usize) -> f64 {
    8.0 + 38.0 * pages as f64
}

fn kept_rate() -> Option<f64> {
    web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(RATE_KEY)
        .ok()??
        .parse()
        .ok()
        .filter(|rate: &f64| rate.is_finite() && *rate > 0.0)
}

fn in_words(seconds: f64) -> String {
    match seconds {
        s if s < 90.0 => format!("about {} seconds", ((s / 5.0).ceil() * 5.0).max(5.0)),
        s => format!("about {} minutes", (s / 60.0).round()),
    }
}

#[component]
pub fn WriteWithMe(
    name: RwSignal<String>,
    pronouns: RwSignal<Pronouns>,
    companion: RwSignal<String>,
    /// The finished (or stopped) story the book starts from.
    written: RwSignal<Option<WrittenStory>>,
) -> impl IntoView {
    let idea = RwSignal::new(String::new());
    let pages = RwSignal::new(DEFAULT_PAGES);
    // The pieces as they arrive: part, text, checked.
    let pieces = RwSignal::new(Vec::<(Part, String, bool)>::new());
    let writing = RwSignal::new(None::<u32>);
    let status = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let writer = LocalResource::new(studio::writer_model);
    let write = move |_| {
        let asked = StoryIdea {
            idea: idea.get_untracked().trim().to_owned(),
            child: Child {
                name: name.get_untracked().trim().to_owned(),
                pronouns: pronouns.get_untracked(),
                companion: companion.get_untracked().trim().to_owned(),
            },
            pages: pages.get_untracked(),
        };
        if asked.child.name.is_empty() {
            error.set(Some("Write your child's name under \"Who is it about?\" first: the story is about them.".into()));
            return;
        }
        if let Err(message) = asked.check() {
            error.set(Some(message));
            return;
        }
        error.set(None);
        written.set(None);
        pieces.set(Vec::new());
        let total = expected_tokens(asked.pages);
        status.set(Some(match kept_rate() {
            Some(rate) => format!("Writing… {} on this device.", in_words(total / rate)),
            None => "Writing… the first story shows how long this device takes.".into(),
        }));
        let started = js_sys::Date::now();
        let mut tokens = 0.0;
        leptos::task::spawn_local(async move {
            let result = studio::write_story(
                asked,
                (js_sys::Math::random() * 1e9) as u64,
                |id| {
                    writing.try_set(Some(id));
                },
                |event| match event {
                    Event::StoryDraft {
                        part, text, kept, ..
                    } => {
                        if !kept {
                            tokens += 1.0;
                        }
                        pieces.try_update(|pieces| {
                            match pieces.iter_mut().find(|(written, _, _)| written == part) {
                                Some(piece) => *piece = (*part, text.clone(), *kept),
                                None => pieces.push((*part, text.clone(), *kept)),
                            }
                        });
                        let seconds = (js_sys::Date::now() - started) / 1000.0;
                        if tokens >= 8.0 && seconds > 0.0 {
                            let left = (total - tokens).max(0.0) / (tokens / seconds);
                            status.try_set(Some(format!("Writing… {} left.", in_words(left))));
                        }
                    }
                    Event::StoryRewriting { part, .. } => {
                        pieces
                            .try_update(|pieces| pieces.retain(|(written, _, _)| written != part));
                        status.try_set(Some(format!(
                            "Writing {} again: the first try was not right for a toddler's book.",
                            part.describe()
                        )));
                    }
                    _ => {}
                },
            )
            .await;
            writing.try_set(None);
            match result {
                Ok(result) => {
                    if result.write_ms > 0.0 && !result.stopped {
                        let rate = result.tokens_written as f64 / (result.write_ms / 1000.0);
                        studio::set_preference(RATE_KEY, &rate.to_string());
                    }
                    let count = result.story.pages.len();
                    status.try_set(Some(match (result.stopped, count) {
                        (true, 0) => "Stopped before the first page was written.".to_owned(),
                        (true, 1) => "Stopped: 1 page written. Make the book from it, or write again.".to_owned(),
                        (true, _) => format!("Stopped: {count} pages written. Make the book from them, or write again."),
                        (false, _) => format!(
                            "Written in {:.0} seconds. Read it below; you can change any word once the book is made.",
                            result.write_ms / 1000.0
                        ),
                    }));
                    if count > 0 {
                        written.try_set(Some(result.story));
                    }
                }
                Err(message) => {
                    status.try_set(None);
                    error.try_set(Some(message));
                }
            }
        });
    };
    let stop = move |_| {
        if let Some(id) = writing.get_untracked() {
            EngineWorker::cancel(id);
        }
    };
    let where_it_runs = move || {
        if Preferences::read().backend == Backend::Cpu {
            "on this device's processor"
        } else {
            "on this device (its graphics chip where the browser offers one)"
        }
    };
    let no_writer = move || {
        writer.with(|found| matches!(found, Some(None))).then(|| {
            let size = studio::default_writer()
                .map(|model| crate::model_store::format_bytes(model.approx_bytes()))
                .unwrap_or_default();
            view! {
                <p class="notice warn" data-testid="writer-missing">
                    {format!("The story writer is not on this device yet ({size}, optional). ")}
                    <A href="/models">"Download it on the Models screen"</A>
                    ", or pick one of the stories above."
                </p>
            }
        })
    };
    let piece_view = move || {
        pieces
            .get()
            .into_iter()
            .map(|(part, text, kept)| {
                let class = if kept {
                    "written-piece"
                } else {
                    "written-piece drafting"
                };
                match part {
                    Part::Title => view! { <h3 class=class>{text}</h3> }.into_any(),
                    Part::Text(page) => view! {
                        <p class=class><strong>{format!("Page {}: ", page + 1)}</strong>{text}</p>
                    }
                    .into_any(),
                    Part::Scene(_) => {
                        view! { <p class=format!("{class} muted")>{format!("Picture: {text}")}</p> }
                            .into_any()
                    }
                }
            })
            .collect_view()
    };
    view! {
        <fieldset class="card" data-testid="story-writer">
            <legend>"Write it with me"</legend>
            <p class="muted">
                {move || format!(
                    "Say what the story is about; the writer writes it {}, for {} — nothing leaves this device.",
                    where_it_runs(),
                    match name.get().trim() { "" => "your child".to_owned(), typed => typed.to_owned() },
                )}
            </p>
            {no_writer}
            <label>
                "Your idea"
                <textarea rows="2" maxlength=MAX_IDEA_CHARS.to_string() data-testid="story-idea"
                    placeholder="Mia is scared of the bath: make her brave and funny"
                    prop:value=idea on:input=move |event| idea.set(event_target_value(&event))></textarea>
            </label>
            <label>
                "Pages"
                <select data-testid="story-pages" on:change=move |event| {
                    pages.set(event_target_value(&event).parse().unwrap_or(DEFAULT_PAGES))
                }>
                    {PAGES.map(|count| view! {
                        <option value=count.to_string() selected=move || pages.get() == count>{count.to_string()}</option>
                    }).collect_view()}
                </select>
            </label>
            <div class="actions">
                <button type="button" class="button" data-testid="write-story"
                    disabled=move || writing.get().is_some() on:click=write>"Write the story"</button>
                {move || writing.get().is_some().then(|| view! {
                    <button type="button" class="button" on:click=stop>"Stop writing"</button>
                })}
            </div>
            {move || error.get().map(|message| view! { <p class="error" role="alert">{message}</p> })}
            {move || status.get().map(|message| view! { <p class="notice" role="status" aria-live="polite">{message}</p> })}
            <div class="written-story" data-testid="written-story" aria-live="polite">{piece_view}</div>
        </fieldset>
    }
}
