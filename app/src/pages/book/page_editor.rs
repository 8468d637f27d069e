//! One page in the editor: its pictures to choose from (with their likeness), its text and
//! scene, who is in its picture, lock and redraw.

use std::collections::HashMap;

use leptos::prelude::*;
use stories::{Book as BookData, Page};

/// Page `index` of `book`; `redraw` draws new choices for it.
#[component]
pub fn PageEditor(
    index: usize,
    book: RwSignal<Option<BookData>>,
    pictures: RwSignal<HashMap<String, String>>,
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
