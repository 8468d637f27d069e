//! The engine in the browser: a dedicated Web Worker (see `bin/engine_worker.rs`) that takes
//! [`protocol::Request`]s and answers with [`protocol::Event`]s.
//!
//! Model files come over HTTP (streamed with Range requests) or from the on-device model store
//! (OPFS); either way weights stream tensor batch by tensor batch, never whole.

mod avatar;
mod device;
mod faces;
pub mod files;
mod state;
pub mod worker;
mod writer;

use protocol::{Envelope, Event};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::DedicatedWorkerGlobalScope;

use crate::error::{EngineError, Result};

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

/// Sends one event, with `bytes` transferred (not copied) beside it.
pub(crate) fn post(event: &Event, bytes: Option<Vec<u8>>) {
    let message = js_sys::Object::new();
    let json = serde_json::to_string(event).expect("events serialise");
    let _ = js_sys::Reflect::set(&message, &Envelope::JSON.into(), &json.into());
    let transfer = js_sys::Array::new();
    if let Some(bytes) = bytes {
        let array = js_sys::Uint8Array::from(bytes.as_slice());
        transfer.push(&array.buffer());
        let _ = js_sys::Reflect::set(&message, &Envelope::BYTES.into(), &array);
    }
    let worker: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    if let Err(error) = worker.post_message_with_transfer(&message, &transfer) {
        web_sys::console::error_1(
            &format!("engine worker: could not post: {}", describe(&error)).into(),
        );
    }
}

/// A picture as PNG bytes, as the app stores and shows it.
pub(crate) fn encode_png(rgb: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            rgb,
            width as u32,
            height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|error| EngineError::Usage(format!("could not encode the picture: {error}")))?;
    Ok(png)
}

/// What burn's GPU allocator holds on `device`; `None` on the CPU (no pools).
pub(crate) fn gpu_memory(device: &burn::tensor::Device) -> Option<protocol::GpuMemory> {
    let usage = device.memory_pool_usage()?;
    Some(protocol::GpuMemory {
        reserved_bytes: usage.bytes_reserved,
    })
}
