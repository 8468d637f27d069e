//! A picture from the on-device store, with the app's own icon until (or unless) it is there.

use leptos::prelude::*;

use crate::components::icon::{Icon, IconName};
use crate::studio;

/// Shows the PNG at `path` in the store; `placeholder` stands in while it loads and when there
/// is none. The read is a plain task that writes into this component's signal only while the
/// component still exists (cards in a list are rebuilt whenever the list is reread).
#[component]
pub fn StoredPicture(
    /// Where the picture is; `None`: nothing to show yet.
    path: Option<String>,
    alt: String,
    placeholder: IconName,
) -> impl IntoView {
    let url = RwSignal::new(None::<String>);
    if let Some(path) = path {
        leptos::task::spawn_local(async move {
            if let Some(found) = studio::picture_url(&path).await {
                url.try_set(Some(found));
            }
        });
    }
    move || {
        match url.get() {
        Some(src) => view! { <img class="thumb" src=src alt=alt.clone() /> }.into_any(),
        None => view! {
            <div class="thumb placeholder" aria-hidden="true"><Icon name=placeholder size=56 /></div>
        }
        .into_any(),
    }
    }
}
