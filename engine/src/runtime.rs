//! The little the engine needs from its host's event loop.

/// Gives the event loop a turn. In a browser worker, messages (a cancel) are only delivered
/// between tasks, and burn's CPU backend computes a whole step without awaiting anything.
#[cfg(target_arch = "wasm32")]
pub async fn yield_now() {
    use wasm_bindgen::{JsCast, JsValue};
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let set_timeout = js_sys::Reflect::get(&global, &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|function| function.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(set_timeout) => {
                let _ = set_timeout.call2(&global, &resolve, &JsValue::from(0));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// Natively the caller owns the thread; there is nothing to yield to.
#[cfg(not(target_arch = "wasm32"))]
pub async fn yield_now() {}
