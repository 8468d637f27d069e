//! One book: edit its pages, illustrate them (variants with their seeds, pick, redraw, lock),
//! then read it — big pages, turned by tap, swipe or keys, read aloud — print it, download its
//! pictures, share it.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;
use stories::{Book as BookData, Page, PictureLikeness, Variant};
use wasm_bindgen::JsCast;

use crate::components::device_check::{SlowDeviceNote, SlowWork};
use crate::components::empty_state::EmptyState;
use crate::components::icon::IconName;
use crate::engine::EngineWorker;
use crate::pages::avatars::ErrorNote;
use crate::storage;
use crate::studio::{self, book_path};

#[derive(Clone, Copy, Debug, PartialEq)]
struct Illustrating {
    done: usize,
    total: usize,
    request: Option<u32>,
}

#[component]
pub fn Book() -> impl IntoView {
    let query = use_query_map();
    let id = move || query.with(|query| query.get("id").unwrap_or_default());
    let book = RwSignal::new(None::<BookData>);
    let error = RwSignal::new(None::<String>);
    let reading = RwSignal::new(false);
    let pictures = RwSignal::new(std::collections::HashMap::<String, String>::new());
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
            && let Ok(engine) = EngineWorker::get()
        {
            engine.cancel(request);
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
async fn load_pictures(
    book: &BookData,
    pictures: RwSignal<std::collections::HashMap<String, String>>,
) {
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

async fn save(book: RwSignal<Option<BookData>>, error: RwSignal<Option<String>>) {
    let Some(Some(mut current)) = book.try_get_untracked() else {
        return;
    };
    if let Err(message) = studio::save_book(&mut current).await {
        error.try_set(Some(message));
    }
}

#[component]
fn Editor(
    book: RwSignal<Option<BookData>>,
    pictures: RwSignal<std::collections::HashMap<String, String>>,
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
        if let (
            Some(Illustrating {
                request: Some(id), ..
            }),
            Ok(engine),
        ) = (illustrating.get_untracked(), EngineWorker::get())
        {
            engine.cancel(id);
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

/// The book's picture style LoRA: add one (a `.safetensors` made for this model), set its
/// strength, remove it. The file is stored beside the book; every page is drawn with it.
#[component]
fn StyleAddOn(
    book: RwSignal<Option<BookData>>,
    edit: StoredValue<impl Fn(Box<dyn FnOnce(&mut BookData)>) + Send + Sync + 'static>,
    error: RwSignal<Option<String>>,
) -> impl IntoView {
    let add = move |event: leptos::ev::Event| {
        let Some(file) = storage::chosen_files(&event).into_iter().next() else {
            return;
        };
        let Some(id) = book.with_untracked(|book| book.as_ref().map(|book| book.id.clone())) else {
            return;
        };
        leptos::task::spawn_local(async move {
            let added = async {
                let bytes = storage::file_bytes(&file).await?;
                if !crate::safetensors::looks_like_lora(&bytes) {
                    return Err(format!(
                        "{} is not a LoRA file. Style add-ons are .safetensors files made for this picture model.",
                        file.name()
                    ));
                }
                studio::check_file(&bytes, &file.name(), protocol::FileKind::Lora)
                    .await
                    .map_err(|message| {
                        format!(
                            "{} cannot be used as a style add-on: it {message}",
                            file.name()
                        )
                    })?;
                storage::write(&studio::book_path(&id, BookData::STYLE_LORA_FILE), &bytes).await?;
                Ok(file.name().trim_end_matches(".safetensors").to_owned())
            };
            match added.await {
                Ok(name) => edit.with_value(|edit| {
                    edit(Box::new(move |book| {
                        book.style_lora = Some(stories::StyleLora { name, scale: 1.0 })
                    }))
                }),
                Err(message) => {
                    error.try_set(Some(message));
                }
            }
        });
    };
    let remove = move |_| {
        edit.with_value(|edit| edit(Box::new(|book| book.style_lora = None)));
    };
    let style = move || book.with(|book| book.as_ref().and_then(|book| book.style_lora.clone()));
    view! {
        <section class="card style-addon" data-testid="style-lora">
            <h2>"Picture style add-on"</h2>
            {move || match style() {
                None => view! {
                    <p class="muted">
                        "A style LoRA (a .safetensors file made for this picture model, such as a watercolour look) "
                        "changes how every picture of this book is drawn. It stays on this device."
                    </p>
                    <label class="button">
                        "Add a style LoRA…"
                        <input type="file" class="visually-hidden" accept=".safetensors" on:change=add />
                    </label>
                }.into_any(),
                Some(style) => view! {
                    <p data-testid="style-name">{format!("Drawn in the style “{}”.", style.name)}</p>
                    <label>
                        {format!("Style strength: {:.1}", style.scale)}
                        <input type="range" min="0" max="1.5" step="0.1" prop:value=style.scale.to_string()
                            on:change=move |event| {
                                let scale: f64 = event_target_value(&event).parse().unwrap_or(1.0);
                                edit.with_value(|edit| edit(Box::new(move |book| {
                                    if let Some(style) = &mut book.style_lora {
                                        style.scale = scale;
                                    }
                                })));
                            } />
                    </label>
                    <button class="button" on:click=remove>"Remove the style"</button>
                }.into_any(),
            }}
        </section>
    }
}

/// Who else is in the book: a brother or sister, a friend, a pet, each drawn from their own
/// avatar or from a description; each page then says who is in its picture.
#[component]
fn CastEditor(
    book: RwSignal<Option<BookData>>,
    edit: StoredValue<impl Fn(Box<dyn FnOnce(&mut BookData)>) + Send + Sync + 'static>,
) -> impl IntoView {
    let avatars = LocalResource::new(studio::avatars);
    let name = RwSignal::new(String::new());
    let role = RwSignal::new("sibling".to_owned());
    let avatar = RwSignal::new(String::new());
    let card = RwSignal::new(String::new());
    let add = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let name_now = name.get_untracked().trim().to_owned();
        if name_now.is_empty() {
            return;
        }
        let member = stories::CastMember {
            name: name_now,
            role: match role.get_untracked().as_str() {
                "friend" => stories::Role::Friend,
                "pet" => stories::Role::Pet,
                _ => stories::Role::Sibling,
            },
            avatar: Some(avatar.get_untracked()).filter(|token| !token.is_empty()),
            card: card.get_untracked().trim().to_owned(),
        };
        edit.with_value(|edit| edit(Box::new(move |book| book.cast.push(member))));
        name.set(String::new());
        card.set(String::new());
    };
    let cast = move || {
        book.with(|book| {
            book.as_ref()
                .map(|book| book.cast.clone())
                .unwrap_or_default()
        })
    };
    view! {
        <section class="card cast" data-testid="cast">
            <h2>"Who else is in this book"</h2>
            <p class="muted">
                "A brother or sister, a friend or the family pet can be in the pictures too, drawn from their own "
                "avatar or from a few words about them. Up to two of them fit in one picture beside your child."
            </p>
            <ul class="cast-list">
                {move || cast().into_iter().enumerate().map(|(index, member)| {
                    let drawn = match &member.avatar {
                        Some(_) => "drawn from their avatar",
                        None => "drawn from the description",
                    };
                    let label = format!("Remove {}", member.name);
                    view! {
                        <li>
                            {format!("{} ({drawn})", member.name)}
                            <button class="button" aria-label=label
                                on:click=move |_| edit.with_value(|edit| edit(Box::new(move |book| {
                                    if index < book.cast.len() {
                                        book.cast.remove(index);
                                    }
                                    // Pages keep naming the same people.
                                    for page in &mut book.pages {
                                        if let Some(on) = &mut page.cast {
                                            on.retain(|&other| other != index);
                                            on.iter_mut().filter(|other| **other > index).for_each(|other| *other -= 1);
                                        }
                                    }
                                })))>"Remove"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <form class="form" on:submit=add>
                <label>
                    "Their name"
                    <input type="text" maxlength="40" prop:value=name on:input=move |event| name.set(event_target_value(&event)) />
                </label>
                <label>
                    "Who they are"
                    <select on:change=move |event| role.set(event_target_value(&event))>
                        <option value="sibling">"Brother or sister"</option>
                        <option value="friend">"Friend"</option>
                        <option value="pet">"Pet"</option>
                    </select>
                </label>
                <label>
                    "Drawn from"
                    <select on:change=move |event| avatar.set(event_target_value(&event))>
                        <option value="">"The description only"</option>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                let own = book.with_untracked(|book| book.as_ref().and_then(|book| book.avatar.clone()));
                                avatars.await.unwrap_or_default().into_iter()
                                    .filter(|choice| choice.is_ready() && Some(&choice.token) != own.as_ref())
                                    .map(|choice| view! { <option value=choice.token.clone()>{format!("The avatar {}", choice.name)}</option> })
                                    .collect_view()
                            })}
                        </Suspense>
                    </select>
                </label>
                <label>
                    "How they look (the same words on every page)"
                    <input type="text" maxlength="120" placeholder="short blond hair, red jumper" prop:value=card
                        on:input=move |event| card.set(event_target_value(&event)) />
                </label>
                <button type="submit" class="button">"Add to the book"</button>
            </form>
        </section>
    }
}

#[component]
fn PageEditor(
    index: usize,
    book: RwSignal<Option<BookData>>,
    pictures: RwSignal<std::collections::HashMap<String, String>>,
    edit: StoredValue<impl Fn(Box<dyn FnOnce(&mut BookData)>) + Send + Sync + 'static>,
    busy: Signal<bool>,
    redraw: Callback<()>,
) -> impl IntoView {
    let page = move || {
        book.with(|book| {
            book.as_ref()
                .and_then(|book| book.pages.get(index).cloned())
        })
    };
    let change = move |apply: Box<dyn FnOnce(&mut Page)>| {
        edit.with_value(|edit| {
            edit(Box::new(move |book: &mut BookData| {
                if let Some(page) = book.pages.get_mut(index) {
                    apply(page);
                }
            }))
        });
    };
    view! {
        <li class="card page-editor" data-testid="page">
            <h2>{format!("Page {}", index + 1)}</h2>
            <div class="page-body">
                <div class="page-picture">
                    {move || {
                        let drawn = page().and_then(|page| {
                            let picture = page.picture()?.clone();
                            let url = pictures.with(|known| known.get(&picture.file).cloned())?;
                            Some((url, picture.seed))
                        });
                        match drawn {
                            Some((url, seed)) => view! {
                                <img src=url alt=format!("Picture for page {}", index + 1) data-testid="page-picture" data-seed=seed.to_string() />
                            }.into_any(),
                            None => view! { <div class="picture-placeholder">"No picture yet"</div> }.into_any(),
                        }
                    }}
                    {move || {
                        let name = book.with(|book| book.as_ref().map(|book| book.child.name.clone())).unwrap_or_default();
                        page().and_then(|page| page.picture().and_then(|picture| picture.likeness)).map(|likeness| view! {
                            <p class="likeness" data-testid="likeness" class:no-face=likeness.score.is_none()>
                                {stories::likeness_words(&name, &likeness)}
                            </p>
                        })
                    }}
                    <div class="variants" role="group" aria-label="Pictures to choose from">
                        {move || page().map(|page| page.variants.iter().enumerate().map(|(number, variant)| {
                            let url = pictures.with(|known| known.get(&variant.file).cloned()).unwrap_or_default();
                            let chosen = page.chosen == Some(number);
                            view! {
                                <button class="variant" class:chosen=chosen aria-pressed=chosen.to_string()
                                    data-testid="variant" title=format!("Seed {}", variant.seed)
                                    on:click=move |_| change(Box::new(move |page| page.chosen = Some(number)))>
                                    <img src=url alt=format!("Choice {} (seed {}){}", number + 1, variant.seed, match variant.likeness.and_then(|likeness| likeness.score) {
                                        Some(score) => format!(", likeness {:.0} in 100", score.max(0.0) * 100.0),
                                        None => String::new(),
                                    }) />
                                </button>
                            }
                        }).collect_view())}
                    </div>
                </div>
                <div class="page-words">
                    <label>
                        "Text"
                        <textarea rows="3" data-testid="page-text"
                            prop:value=move || page().map(|page| page.text).unwrap_or_default()
                            on:change=move |event| {
                                let text = event_target_value(&event);
                                change(Box::new(move |page| page.text = text));
                            }></textarea>
                    </label>
                    <label>
                        "Scene (what the picture shows)"
                        <input type="text" data-testid="page-scene"
                            prop:value=move || page().map(|page| page.scene).unwrap_or_default()
                            on:change=move |event| {
                                let scene = event_target_value(&event);
                                change(Box::new(move |page| page.scene = scene));
                            } />
                    </label>
                    {move || {
                        let cast = book.with(|book| book.as_ref().map(|book| book.cast.clone()).unwrap_or_default());
                        (!cast.is_empty()).then(|| view! {
                            <fieldset class="in-picture">
                                <legend>"In this picture"</legend>
                                {cast.into_iter().enumerate().map(|(member, person)| view! {
                                    <label class="check">
                                        <input type="checkbox"
                                            prop:checked=move || book.with(|book| book.as_ref().is_some_and(|book| {
                                                book.cast.get(member).is_some_and(|person| {
                                                    book.cast_on_page(index).iter().any(|on| std::ptr::eq(*on, person))
                                                })
                                            }))
                                            on:change=move |event| {
                                                let wanted = event_target_checked(&event);
                                                let count = book.with_untracked(|book| book.as_ref().map_or(0, |book| book.cast.len()));
                                                change(Box::new(move |page| {
                                                    let mut on = page.cast.clone().unwrap_or_else(|| (0..count).collect());
                                                    on.retain(|&other| other != member);
                                                    if wanted {
                                                        on.push(member);
                                                    }
                                                    page.cast = Some(on);
                                                }));
                                            } />
                                        {person.name}
                                    </label>
                                }).collect_view()}
                            </fieldset>
                        })
                    }}
                    <div class="actions">
                        <label class="check">
                            <input type="checkbox" data-testid="page-lock"
                                prop:checked=move || page().is_some_and(|page| page.locked)
                                on:change=move |event| {
                                    let locked = event_target_checked(&event);
                                    change(Box::new(move |page| page.locked = locked));
                                } />
                            "Keep this picture"
                        </label>
                        <button class="button" data-testid="redraw" on:click=move |_| redraw.run(())
                            disabled=move || busy.get() || page().is_some_and(|page| page.locked)>
                            "Draw new choices"
                        </button>
                    </div>
                </div>
            </div>
        </li>
    }
}

#[component]
fn Reader(
    book: RwSignal<Option<BookData>>,
    pictures: RwSignal<std::collections::HashMap<String, String>>,
    reading: RwSignal<bool>,
) -> impl IntoView {
    // 0 is the cover; 1..=pages are the book's pages.
    let current = RwSignal::new(0usize);
    let count = move || book.with(|book| book.as_ref().map_or(0, |book| book.pages.len()));
    let turn = move |by: isize| {
        let next = (current.get_untracked() as isize + by).clamp(0, count() as isize);
        current.set(next as usize);
    };
    let keys = window_event_listener(leptos::ev::keydown, move |event| {
        match event.key().as_str() {
            "ArrowRight" | "PageDown" | " " => turn(1),
            "ArrowLeft" | "PageUp" => turn(-1),
            _ => {}
        }
    });
    on_cleanup(move || keys.remove());
    let touch_start = RwSignal::new(None::<i32>);
    let page = move || {
        let index = current.get().checked_sub(1)?;
        book.with(|book| {
            book.as_ref()
                .and_then(|book| book.pages.get(index).cloned())
        })
    };
    let picture_of = move |page: &Page| {
        page.picture()
            .and_then(|picture| pictures.with(|known| known.get(&picture.file).cloned()))
    };
    // The cover shows the first page that has a picture.
    let cover_picture = move || {
        book.with(|book| {
            book.as_ref()
                .and_then(|book| book.pages.iter().find_map(picture_of))
        })
    };
    let title = move || {
        book.with(|book| {
            book.as_ref()
                .map(|book| book.title.clone())
                .unwrap_or_default()
        })
    };
    let starring = move || {
        book.with(|book| {
            book.as_ref()
                .map(|book| book.child.name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .map(|name| format!("A story starring {name}"))
        })
    };
    let speak = move |_| match page() {
        Some(page) => read_aloud(&page.text),
        None => read_aloud(&title()),
    };
    let download = move |_| {
        if let Some(book) = book.get_untracked() {
            leptos::task::spawn_local(async move {
                let _ = download_zip(&book).await;
            });
        }
    };
    let share = move |_| {
        if let Some(book) = book.get_untracked() {
            leptos::task::spawn_local(async move { share_book(&book).await });
        }
    };
    let can_speak = has_speech();
    let can_share = has_share();
    let at_start = move || current.get() == 0;
    let at_end = move || current.get() >= count();
    let position = move || match current.get() {
        0 => "Cover".to_owned(),
        number => format!("Page {number} of {}", count()),
    };
    view! {
        <section class="reader" data-testid="reader"
            on:touchstart=move |event: leptos::ev::TouchEvent| {
                touch_start.set(event.changed_touches().get(0).map(|touch| touch.client_x()));
            }
            on:touchend=move |event: leptos::ev::TouchEvent| {
                if let (Some(start), Some(touch)) = (touch_start.get_untracked(), event.changed_touches().get(0)) {
                    let moved = touch.client_x() - start;
                    if moved.abs() > 50 { turn(if moved < 0 { 1 } else { -1 }); }
                }
            }>
            <header class="reader-bar no-print">
                <button class="button" on:click=move |_| reading.set(false) data-testid="edit">"Edit"</button>
                <h1 class="reader-title">{title}</h1>
                <div class="actions">
                    {can_speak.then(|| view! { <button class="button" on:click=speak data-testid="read-aloud">"Read aloud"</button> })}
                    <button class="button" on:click=move |_| { let _ = web_sys::window().map(|window| window.print()); } data-testid="print">"Print or save as PDF"</button>
                    <button class="button" on:click=download data-testid="download-zip">"Download pictures"</button>
                    {can_share.then(|| view! { <button class="button" on:click=share>"Share"</button> })}
                </div>
            </header>
            <div class="reader-page no-print" data-testid="reader-page" on:click=move |_| turn(1)>
                {move || match page() {
                    Some(page) => view! {
                        {picture_of(&page).map(|url| view! { <img class="reader-picture" src=url alt="" /> })}
                        <p class="reader-text" data-testid="reader-text">{page.text.clone()}</p>
                    }.into_any(),
                    None => view! {
                        <div class="reader-cover" data-testid="reader-cover">
                            {cover_picture().map(|url| view! { <img class="reader-picture" src=url alt="" /> })}
                            <h2 class="cover-title">{title()}</h2>
                            {starring().map(|line| view! { <p class="cover-starring">{line}</p> })}
                        </div>
                    }.into_any(),
                }}
            </div>
            <nav class="reader-nav no-print" aria-label="Pages">
                <button class="button" on:click=move |_| turn(-1) disabled=at_start aria-label="Previous page">"‹ Back"</button>
                <span data-testid="page-number">{position}</span>
                <button class="button" on:click=move |_| turn(1) disabled=at_end aria-label="Next page" data-testid="next-page">"Next ›"</button>
            </nav>
            // A cover, then one page per sheet when printed (see the print stylesheet).
            <div class="print-book" aria-hidden="true">
                <article class="print-page print-cover" data-testid="print-cover">
                    {move || cover_picture().map(|url| view! { <img src=url alt="" /> })}
                    <h2>{title}</h2>
                    {move || starring().map(|line| view! { <p>{line}</p> })}
                </article>
                {move || book.get().map(|book| book.pages.iter().map(|page| view! {
                    <article class="print-page">
                        {picture_of(page).map(|url| view! { <img src=url alt="" /> })}
                        <p>{page.text.clone()}</p>
                    </article>
                }).collect_view())}
            </div>
        </section>
    }
}

fn has_speech() -> bool {
    web_sys::window()
        .and_then(|window| js_sys::Reflect::get(&window, &"speechSynthesis".into()).ok())
        .is_some_and(|speech| !speech.is_undefined())
}

fn read_aloud(text: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    if let (Ok(speech), Ok(utterance)) = (
        window.speech_synthesis(),
        web_sys::SpeechSynthesisUtterance::new_with_text(text),
    ) {
        speech.cancel();
        utterance.set_rate(0.9);
        speech.speak(&utterance);
    }
}

fn has_share() -> bool {
    web_sys::window()
        .and_then(|window| js_sys::Reflect::get(&window.navigator(), &"share".into()).ok())
        .is_some_and(|share| share.is_function())
}

/// The chosen pictures, in page order, as (file name in the zip, PNG bytes).
async fn chosen_pictures(book: &BookData) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (index, page) in book.pages.iter().enumerate() {
        if let Some(picture) = page.picture()
            && let Ok(Some(bytes)) = storage::read(&book_path(&book.id, &picture.file)).await
        {
            files.push((format!("page-{:02}.png", index + 1), bytes));
        }
    }
    files
}

async fn download_zip(book: &BookData) -> Result<(), String> {
    let files = chosen_pictures(book).await;
    let mut text = format!("{}\n\n", book.title);
    for (index, page) in book.pages.iter().enumerate() {
        text.push_str(&format!("Page {}: {}\n", index + 1, page.text));
    }
    let mut entries: Vec<(String, Vec<u8>)> = vec![("story.txt".into(), text.into_bytes())];
    entries.extend(files);
    let zip = crate::zip::stored(&entries);
    storage::download(
        &zip,
        &format!("{}.zip", book.title.replace(['/', '\\'], "-")),
        "application/zip",
    )
}

async fn share_book(book: &BookData) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let files = js_sys::Array::new();
    for (name, bytes) in chosen_pictures(book).await {
        let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes.as_slice()));
        let options = web_sys::FilePropertyBag::new();
        options.set_type("image/png");
        if let Ok(file) =
            web_sys::File::new_with_u8_array_sequence_and_options(&parts, &name, &options)
        {
            files.push(&file);
        }
    }
    let data = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&data, &"title".into(), &book.title.clone().into());
    let _ = js_sys::Reflect::set(&data, &"files".into(), &files);
    let navigator = window.navigator();
    if let Ok(share) = js_sys::Reflect::get(&navigator, &"share".into())
        && let Ok(promise) = share
            .unchecked_into::<js_sys::Function>()
            .call1(&navigator, &data)
        && let Ok(promise) = promise.dyn_into::<js_sys::Promise>()
    {
        // The parent may dismiss the share sheet: not an error.
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}
