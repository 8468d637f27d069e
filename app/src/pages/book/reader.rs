//! The book to read: a cover, then big pages turned by tap, swipe or keys; read aloud (with the
//! browser's on-device voices only); print (with its own print layout); download and share.

use std::collections::HashMap;

use leptos::prelude::*;
use stories::{Book as BookData, Page};
use wasm_bindgen::JsCast;
use web_sys::{SpeechSynthesis, SpeechSynthesisVoice};

use crate::pages::book::sharing::{download_zip, has_share, share_book};

/// Reads `book`; Edit sets `reading` back to false.
#[component]
pub fn Reader(
    book: RwSignal<Option<BookData>>,
    pictures: RwSignal<HashMap<String, String>>,
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
    // Asking once starts the browser loading its voices, so the first "Read aloud" finds them.
    if let Some(speech) = speech() {
        let _ = speech.get_voices();
    }
    let speech_note = RwSignal::new(None::<String>);
    let speak = move |_| {
        let text = match page() {
            Some(page) => page.text,
            None => title(),
        };
        speech_note.set(read_aloud(&text).err());
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
            {move || speech_note.get().map(|note| view! { <p class="notice warn no-print" role="status">{note}</p> })}
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

/// The language books are written in (the templates and the story writer write English).
const BOOK_LANGUAGE: &str = "en";

fn speech() -> Option<SpeechSynthesis> {
    has_speech()
        .then(|| web_sys::window()?.speech_synthesis().ok())
        .flatten()
}

/// The voice to read with: one the browser synthesises on this device (`localService`), in the
/// book's language, its default first. Remote voices (Chrome's "Google" ones) send the text — the
/// story and the child's name — to a server, which the app's own network rules cannot see.
fn local_voice(speech: &SpeechSynthesis) -> Option<SpeechSynthesisVoice> {
    let voices: Vec<SpeechSynthesisVoice> = speech
        .get_voices()
        .iter()
        .map(|voice| voice.unchecked_into::<SpeechSynthesisVoice>())
        .collect();
    voices
        .into_iter()
        .filter(|voice| voice.local_service())
        .filter(|voice| voice.lang().to_lowercase().starts_with(BOOK_LANGUAGE))
        .max_by_key(|voice| voice.default())
}

/// Reads `text` aloud with an on-device voice, or says why not.
fn read_aloud(text: &str) -> Result<(), String> {
    let speech = speech().ok_or("This browser cannot read aloud.")?;
    if speech.get_voices().length() == 0 {
        return Err(
            "The browser is still getting its voices ready: try Read aloud again in a moment."
                .into(),
        );
    }
    let voice = local_voice(&speech).ok_or(
        "This browser has no English voice on this device, so the book is not read aloud: its other \
         voices send the words to a server, and the story stays on this device. Adding an English \
         voice in the computer's language or speech settings makes Read aloud work.",
    )?;
    let utterance = web_sys::SpeechSynthesisUtterance::new_with_text(text)
        .map_err(|_| "This browser cannot read aloud.")?;
    speech.cancel();
    utterance.set_voice(Some(&voice));
    utterance.set_lang(&voice.lang());
    utterance.set_rate(0.9);
    speech.speak(&utterance);
    Ok(())
}
