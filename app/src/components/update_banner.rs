//! "A new version is ready" — shown when the service worker has downloaded an update.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::service_worker;

#[component]
pub fn UpdateBanner() -> impl IntoView {
    let update_ready = RwSignal::new(false);
    spawn_local(service_worker::register(move || update_ready.set(true)));
    view! {
        <Show when=move || update_ready.get()>
            <div class="update-banner" role="status" data-testid="update-banner">
                <span>"A new version of ToddlerStories is ready. Your books and avatars stay as they are."</span>
                <button class="button primary" on:click=move |_| spawn_local(service_worker::apply_update())>
                    "Update now"
                </button>
            </div>
        </Show>
    }
}
