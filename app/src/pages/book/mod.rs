//! One book: edit its pages, illustrate them (variants with their seeds, pick, redraw, lock),
//! then read it — big pages, turned by tap, swipe or keys, read aloud — print it, download its
//! pictures, share it.
//!
//! The screen is here: it loads the book and its pictures and shows the editor or the reader.
//! The editor's pieces (style add-on, cast, pages), the reader and sharing have their own modules.

mod cast_editor;
mod editor;
mod page_editor;
mod reader;
mod sharing;
mod style_add_on;

use std::collections::HashMap;

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use stories::Book as BookData;

use crate::components::empty_state::EmptyState;
use crate::components::error_note::ErrorNote;
use crate::components::icon::IconName;
use crate::engine::EngineWorker;
use crate::pages::book::editor::{Editor, Illustrating};
use crate::pages::book::reader::Reader;
use crate::studio::{self, book_path};

/// The Book screen, `/book?id=…` (with `&read` to open the reader).
#[component]
pub fn Book() -> impl IntoView {
    let query = use_query_map();
    let id = move || query.with(|query| query.get("id").unwrap_or_default());
    let book = RwSignal::new(None::<BookData>);
    let error = RwSignal::new(None::<String>);
    let reading = RwSignal::new(false);
    let pictures = RwSignal::new(HashMap::<String, String>::new());
    Effect::new(move || {
        let id = id();
        reading.set(query.with(|query| query.get("read").is_some()));
        leptos::task::spawn_local(async move {
            if id.is_empty() {
                return;
            }
            // The parent may have left the page before the book arrives: `try_`.
            match studio::book(&id).await {
                Ok(loaded) => {
                    load_pictures(&loaded, pictures).await;
                    book.try_set(Some(loaded));
                }
                Err(message) => {
                    error.try_set(Some(message));
                }
            }
        });
    });
    // Owned here, not by the editor: a drawing loop outlives the editor when the parent
    // switches to reading, and the views below are rebuilt only when the book first arrives.
    let illustrating = RwSignal::new(None::<Illustrating>);
    let cancelled = RwSignal::new(false);
    // Leaving the page stops the drawing loop (its signals go with the page) and the engine.
    on_cleanup(move || {
        if let Some(Some(Illustrating {
            request: Some(request),
            ..
        })) = illustrating.try_get_untracked()
        {
            EngineWorker::cancel(request);
        }
    });
    let loaded = Memo::new(move |_| book.with(Option::is_some));
    let no_book = move || id().is_empty();
    view! {
        <Show when=no_book>
            <header class="page-header">
                <h1>"Read"</h1>
            </header>
            <EmptyState icon=IconName::Book title="No book is open">
                <p>"Open a book from your bookshelf, or start a new story."</p>
                <div class="actions">
                    <A href="/" attr:class="button primary">"Go to the bookshelf"</A>
                    <A href="/story" attr:class="button">"Start a story"</A>
                </div>
            </EmptyState>
        </Show>
        <ErrorNote error />
        {move || loaded.get().then(|| if reading.get() {
            view! { <Reader book pictures reading /> }.into_any()
        } else {
            view! { <Editor book pictures reading error illustrating cancelled /> }.into_any()
        })}
    }
}

/// Object URLs of every stored picture of `book`, by file name.
async fn load_pictures(book: &BookData, pictures: RwSignal<HashMap<String, String>>) {
    for page in &book.pages {
        for variant in &page.variants {
            if pictures
                .try_with_untracked(|known| known.contains_key(&variant.file))
                .unwrap_or(true)
            {
                continue;
            }
            if let Some(url) = studio::picture_url(&book_path(&book.id, &variant.file)).await
                && pictures
                    .try_update(|known| known.insert(variant.file.clone(), url))
                    .is_none()
            {
                return;
            }
        }
    }
}
