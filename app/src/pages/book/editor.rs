//! The book editor: title, illustrating the whole book or the missing pages (the drawing loop,
//! its progress and Stop), who the book stars, and the list of pages.

use std::collections::HashMap;

use leptos::prelude::*;
use stories::{Book as BookData, Page, PictureLikeness, Variant};

use crate::components::device_check::{SlowDeviceNote, SlowWork};
use crate::engine::EngineWorker;
use crate::pages::book::cast_editor::CastEditor;
use crate::pages::book::page_editor::PageEditor;
use crate::pages::book::style_add_on::StyleAddOn;
use crate::studio::{self, book_path};

/// A drawing round in progress: pictures done of `total`, and the engine request drawing now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Illustrating {
    done: usize,
    total: usize,
    pub request: Option<u32>,
}

/// Adds a newly drawn picture to page `index` and picks, among this round's pictures so far
/// (from `round_start`), the one that looks most like the child (the round's first when none
/// has a score).
fn add_variant(
    book: &mut BookData,
    index: usize,
    variant: usize,
    round_start: usize,
    (file, likeness): (String, Option<PictureLikeness>),
) {
    let seed = book.seed(index, variant);
    let Some(page) = book.pages.get_mut(index) else {
        return;
    };
    page.variants.push(Variant {
        seed,
        file,
        likeness,
    });
    page.chosen = page.most_alike_from(round_start);
}

/// Stores the book as it is now, unless the page is gone; a failure goes to `error`.
async fn save(book: RwSignal<Option<BookData>>, error: RwSignal<Option<String>>) {
    let Some(Some(mut current)) = book.try_get_untracked() else {
        return;
    };
    if let Err(message) = studio::save_book(&mut current).await {
        error.try_set(Some(message));
    }
}

/// The editor of a loaded `book`. `illustrating` and `cancelled` belong to the Book screen: a
/// drawing round goes on when the parent switches to reading.
#[component]
pub fn Editor(
    book: RwSignal<Option<BookData>>,
    pictures: RwSignal<HashMap<String, String>>,
    reading: RwSignal<bool>,
    error: RwSignal<Option<String>>,
    illustrating: RwSignal<Option<Illustrating>>,
    cancelled: RwSignal<bool>,
) -> impl IntoView {
    let illustrate = move |pages: Vec<usize>| {
        let Some(current) = book.get_untracked() else {
            return;
        };
        let variants = current.drawing.variants.max(1);
        let total = pages.len() * variants;
        if total == 0 {
            return;
        }
        cancelled.set(false);
        illustrating.set(Some(Illustrating {
            done: 0,
            total,
            request: None,
        }));
        // Every signal here belongs to the Book page, which the parent may leave mid-way:
        // each access is `try_`, and a gone page ends the loop.
        leptos::task::spawn_local(async move {
            let mut done = 0;
            'pages: for index in pages {
                let first = book
                    .try_with_untracked(|book| {
                        book.as_ref()
                            .map_or(0, |book| book.pages[index].variants.len())
                    })
                    .unwrap_or(0);
                for variant in first..first + variants {
                    if cancelled.try_get_untracked().unwrap_or(true) {
                        break 'pages;
                    }
                    let Some(Some(current)) = book.try_get_untracked() else {
                        break 'pages;
                    };
                    let drawn = studio::draw_page(&current, index, variant, |id| {
                        illustrating.try_update(|state| {
                            if let Some(state) = state {
                                state.request = Some(id);
                            }
                        });
                    })
                    .await;
                    match drawn {
                        Ok(Some(drawn)) => {
                            let file = drawn.0.clone();
                            if let Some(url) =
                                studio::picture_url(&book_path(&current.id, &file)).await
                            {
                                pictures.try_update(|known| {
                                    known.insert(file.clone(), url);
                                });
                            }
                            let recorded = book.try_update(|book| {
                                if let Some(book) = book {
                                    add_variant(book, index, variant, first, drawn.clone());
                                }
                            });
                            if recorded.is_none() {
                                // The page is gone; the picture just drawn still goes in the book.
                                if let Ok(mut stored) = studio::book(&current.id).await {
                                    add_variant(&mut stored, index, variant, first, drawn);
                                    let _ = studio::save_book(&mut stored).await;
                                }
                                break 'pages;
                            }
                            save(book, error).await;
                        }
                        Ok(None) => break 'pages,
                        Err(message) => {
                            error.try_set(Some(message));
                            break 'pages;
                        }
                    }
                    done += 1;
                    illustrating.try_update(|state| {
                        if let Some(state) = state {
                            state.done = done;
                        }
                    });
                }
            }
            illustrating.try_set(None);
        });
    };
    let illustrate_all = move |_| {
        let pages = book.with_untracked(|book| {
            book.as_ref()
                .map_or(Vec::new(), |book| book.pages_to_draw(false))
        });
        illustrate(pages);
    };
    let cancel = move |_| {
        cancelled.set(true);
        if let Some(Illustrating {
            request: Some(id), ..
        }) = illustrating.get_untracked()
        {
            EngineWorker::cancel(id);
        }
    };
    let edit = move |change: Box<dyn FnOnce(&mut BookData)>| {
        book.update(|book| {
            if let Some(book) = book {
                change(book);
            }
        });
        leptos::task::spawn_local(save(book, error));
    };
    let edit = StoredValue::new(edit);
    let add_page = move |_| {
        edit.with_value(|edit| edit(Box::new(|book| book.pages.push(Page::default()))));
    };
    let page_count = move || book.with(|book| book.as_ref().map_or(0, |book| book.pages.len()));
    let drawn_count = move || {
        book.with(|book| {
            book.as_ref().map_or(0, |book| {
                book.pages
                    .iter()
                    .filter(|page| page.picture().is_some())
                    .count()
            })
        })
    };
    view! {
        <header class="page-header">
            <h1>
                <label class="visually-hidden" for="book-title">"Title"</label>
                <input id="book-title" class="title-input" data-testid="book-title"
                    prop:value=move || book.with(|book| book.as_ref().map(|book| book.title.clone()).unwrap_or_default())
                    on:change=move |event| {
                        let title = event_target_value(&event);
                        edit.with_value(|edit| edit(Box::new(move |book| book.title = title)));
                    } />
            </h1>
            <div class="actions">
                <button class="button primary" data-testid="illustrate" on:click=illustrate_all
                    disabled=move || illustrating.get().is_some()>
                    {move || if drawn_count() == 0 { "Illustrate the book" } else { "Illustrate missing pages" }}
                </button>
                <button class="button" data-testid="read" on:click=move |_| reading.set(true)>"Read"</button>
            </div>
        </header>
        <SlowDeviceNote work=SlowWork::Picture />
        {move || book.with(|book| book.as_ref().map(|book| match &book.avatar {
            Some(_) => view! {
                <p class="notice ok" data-testid="book-stars">
                    {format!(
                        "Every picture shows {}, drawn from the avatar learned from your photos.",
                        if book.child.name.trim().is_empty() { "your child" } else { book.child.name.trim() }
                    )}
                </p>
                <details class="muted" data-testid="likeness-limits">
                    <summary>"How the app picks a page's picture"</summary>
                    <p>
                        "When a page has several pictures, a face matcher on this device compares each picture's "
                        "face with your photos and picks the closest. It ranks pictures; it cannot tell who anyone "
                        "is. It was made for grown-ups' faces: with toddlers and with drawings it is often unsure, "
                        "and in many drawn styles it finds no face at all — then it says so and gives no score. "
                        "Your own eye is the real judge: choose another picture whenever you like."
                    </p>
                </details>
            }.into_any(),
            None => view! {
                <p class="notice warn" data-testid="book-stars">
                    "This book has no avatar, so its pictures show a storybook toddler, not your child."
                </p>
            }.into_any(),
        }))}
        <StyleAddOn book edit error />
        <CastEditor book edit />
        {move || illustrating.get().map(|state| view! {
            <section class="card" aria-live="polite" data-testid="illustrating">
                <p>{format!("Drawing picture {} of {}…", (state.done + 1).min(state.total), state.total)}</p>
                <progress max=state.total as f64 value=state.done as f64 data-testid="illustrate-progress"></progress>
                <button class="button" on:click=cancel>"Stop"</button>
            </section>
        })}
        <p class="muted" data-testid="drawn-count">
            {move || format!("{} of {} pages have a picture.", drawn_count(), page_count())}
        </p>
        <ol class="page-list">
            {move || (0..page_count()).map(|index| view! {
                <PageEditor index book pictures edit busy=Signal::derive(move || illustrating.get().is_some())
                    redraw=Callback::new(move |()| illustrate(vec![index])) />
            }).collect_view()}
        </ol>
        <button class="button" on:click=add_page data-testid="add-page">"Add a page"</button>
    }
}
