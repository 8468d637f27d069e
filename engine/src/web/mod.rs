//! The engine in the browser: a dedicated Web Worker (see `bin/engine_worker.rs`) that takes
//! [`protocol::Request`]s and answers with [`protocol::Event`]s.
//!
//! Model files come over HTTP (streamed with Range requests) or from the on-device model store
//! (OPFS); either way weights stream tensor batch by tensor batch, never whole.

mod avatar;
mod faces;
pub mod files;
pub mod worker;

use wasm_bindgen::{JsCast, JsValue};

/// A JS exception or rejection as text.
pub(crate) fn describe(error: &JsValue) -> String {
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

/// The worker's global scope.
pub(crate) fn scope() -> web_sys::WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// The wasm heap's current size. Wasm memory only grows, so this is also its peak so far.
pub fn wasm_heap_bytes() -> u64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as u64
}
