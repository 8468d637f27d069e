//! Registers the service worker that keeps the app working offline, and carries out the
//! parent's "update now" when a new version has been downloaded in the background.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen_futures::JsFuture;
use web_sys::{ServiceWorker, ServiceWorkerRegistration, ServiceWorkerState};

/// The message `sw.js` answers by activating the waiting version.
const SKIP_WAITING: &str = "skip-waiting";

/// Registers `/sw.js`; calls `on_update_ready` once a new version is installed and waiting.
/// The first install needs no prompt: the worker claims the open page itself.
pub async fn register(on_update_ready: impl Fn() + Clone + 'static) {
    let Some(container) = container() else {
        return;
    };
    let options = web_sys::RegistrationOptions::new();
    // Always ask the server for sw.js itself, so a new deployment is noticed on the next visit.
    options.set_update_via_cache(web_sys::ServiceWorkerUpdateViaCache::None);
    let registration =
        match JsFuture::from(container.register_with_options("/sw.js", &options)).await {
            Ok(registration) => registration.unchecked_into::<ServiceWorkerRegistration>(),
            Err(error) => {
                web_sys::console::warn_2(
                    &"ToddlerStories could not start its offline support:".into(),
                    &error,
                );
                return;
            }
        };
    if registration.waiting().is_some() && container.controller().is_some() {
        on_update_ready();
    }
    let watched = registration.clone();
    let on_update_found = Closure::<dyn FnMut()>::new(move || {
        if let Some(installing) = watched.installing() {
            watch_install(installing, on_update_ready.clone());
        }
    });
    registration.set_onupdatefound(Some(on_update_found.as_ref().unchecked_ref()));
    // The page lives as long as the registration: the listener is never removed.
    on_update_found.forget();
}

fn watch_install(worker: ServiceWorker, on_update_ready: impl Fn() + 'static) {
    let observed = worker.clone();
    let on_state_change = Closure::<dyn FnMut()>::new(move || {
        let replaces_a_running_version =
            container().is_some_and(|container| container.controller().is_some());
        if observed.state() == ServiceWorkerState::Installed && replaces_a_running_version {
            on_update_ready();
        }
    });
    worker.set_onstatechange(Some(on_state_change.as_ref().unchecked_ref()));
    on_state_change.forget();
}

/// Activates the waiting version and reloads the page once it has taken control.
pub async fn apply_update() {
    let Some(container) = container() else {
        return;
    };
    let reload = Closure::<dyn FnMut()>::new(|| {
        let _ = web_sys::window().map(|window| window.location().reload());
    });
    container.set_oncontrollerchange(Some(reload.as_ref().unchecked_ref()));
    reload.forget();
    let Ok(ready) = container.ready() else {
        return;
    };
    if let Ok(registration) = JsFuture::from(ready).await {
        let registration = registration.unchecked_into::<ServiceWorkerRegistration>();
        if let Some(waiting) = registration.waiting() {
            let _ = waiting.post_message(&SKIP_WAITING.into());
        }
    }
}

fn container() -> Option<web_sys::ServiceWorkerContainer> {
    let navigator = web_sys::window()?.navigator();
    // Absent on insecure origins and in some private modes.
    js_sys::Reflect::has(&navigator, &"serviceWorker".into())
        .unwrap_or(false)
        .then(|| navigator.service_worker())
}
