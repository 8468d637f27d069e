//! When the app panics, the parent sees a kind note and a way back, not a frozen page.
//!
//! A panic in wasm ends in a trap: after it this module instance cannot be trusted to run again,
//! so the note is plain DOM made inside the panic hook, and "Reload" is an ordinary link (no Rust
//! handler behind it). Everything the parent made is already in the browser's storage — books are
//! saved on every change, avatars checkpoint while they learn — so a reload loses nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use wasm_bindgen::JsCast;

static SHOWN: AtomicBool = AtomicBool::new(false);

/// Installs the hook: the panic goes to the console as before, then the note goes up.
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        if !SHOWN.swap(true, Ordering::SeqCst) {
            show_note();
        }
    }));
}

fn show_note() -> Option<()> {
    let window = web_sys::window()?;
    let document = window.document()?;
    let body = document.body()?;
    let note = document.create_element("div").ok()?;
    note.set_class_name("crash-note");
    note.set_attribute("role", "alertdialog").ok()?;
    note.set_attribute("aria-labelledby", "crash-title").ok()?;
    note.set_attribute("data-testid", "crash-note").ok()?;
    let card = document.create_element("div").ok()?;
    card.set_class_name("crash-card");
    let title = document.create_element("h2").ok()?;
    title.set_id("crash-title");
    title.set_text_content(Some("Something went wrong"));
    let words = document.create_element("p").ok()?;
    words.set_text_content(Some(
        "The app stopped working on this page. Your books, avatars and photos are safe on this \
         device. Reload to carry on; an avatar that was learning continues from its last saved step.",
    ));
    let reload = document.create_element("a").ok()?;
    reload.set_class_name("button primary");
    reload
        .set_attribute("href", &window.location().href().ok()?)
        .ok()?;
    reload.set_text_content(Some("Reload"));
    card.append_child(&title).ok()?;
    card.append_child(&words).ok()?;
    card.append_child(&reload).ok()?;
    note.append_child(&card).ok()?;
    body.append_child(&note).ok()?;
    // Keyboard and screen-reader users land on the way back.
    reload.dyn_into::<web_sys::HtmlElement>().ok()?.focus().ok()
}
