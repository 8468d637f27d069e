//! Settings: privacy in plain words, what this device can do, and storage.

use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::components::device_check::DeviceCheck;
use crate::gpu::format_bytes;

#[component]
pub fn Settings() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"Settings"</h1>
        </header>
        <section class="card" data-testid="privacy">
            <h2>"What stays on this device"</h2>
            <p>
                "Everything you make: photos of your child, avatars, stories and pictures. They are stored in this browser "
                "only and are never uploaded. The only thing the app downloads is the picture model."
            </p>
        </section>
        <DeviceCheck />
        <StorageUse />
    }
}

#[component]
fn StorageUse() -> impl IntoView {
    let estimate = LocalResource::new(storage_estimate);
    view! {
        <section class="card" data-testid="storage">
            <h2>"Storage"</h2>
            <Suspense fallback=|| view! { <p>"Measuring…"</p> }>
                {move || Suspend::new(async move {
                    match estimate.await {
                        Some((usage, quota)) => format!(
                            "ToddlerStories uses {} of the {} this browser allows it.",
                            format_bytes(usage),
                            format_bytes(quota)
                        ),
                        None => "This browser does not say how much storage it allows.".to_owned(),
                    }
                })}
            </Suspense>
        </section>
    }
}

async fn storage_estimate() -> Option<(f64, f64)> {
    let storage = web_sys::window()?.navigator().storage();
    let estimate = JsFuture::from(storage.estimate().ok()?).await.ok()?;
    let estimate = estimate.unchecked_into::<web_sys::StorageEstimate>();
    Some((estimate.get_usage()?, estimate.get_quota()?))
}
