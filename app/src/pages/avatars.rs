//! Avatars: the children (and pets) who star in the books.

use leptos::prelude::*;

use crate::components::empty_state::EmptyState;
use crate::components::icon::IconName;

#[component]
pub fn Avatars() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"Avatars"</h1>
        </header>
        <EmptyState icon=IconName::Avatar title="No avatars yet">
            <p>
                "An avatar teaches the app what your child looks like, so they look like themselves on every page. "
                "You will choose 3 to 10 clear photos, frame your child's face, and the app learns from them on this device."
            </p>
            <p>"The photos are kept only on this device and are never uploaded. Siblings and pets can have avatars too."</p>
        </EmptyState>
    }
}
