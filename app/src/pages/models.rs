//! The picture model: download once, then draw offline.

use leptos::prelude::*;

use crate::components::device_check::DeviceCheck;
use crate::components::empty_state::EmptyState;
use crate::components::icon::IconName;

#[component]
pub fn Models() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"Picture model"</h1>
        </header>
        <EmptyState icon=IconName::Palette title="No picture model on this device yet">
            <p>
                "ToddlerStories draws with a small picture model (SD-Turbo, about 2.6 GB). "
                "You download it once; after that the app draws even without an internet connection."
            </p>
            <p>"The download comes from the model host in Settings. Nothing about you or your child is sent there."</p>
        </EmptyState>
        <DeviceCheck />
    }
}
