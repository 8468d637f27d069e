//! Any address the app does not know.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::empty_state::EmptyState;
use crate::components::icon::IconName;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <EmptyState icon=IconName::Compass title="This page does not exist">
            <p>"Let's go back to your bookshelf."</p>
            <div class="actions">
                <A href="/" attr:class="button primary">"Back to the bookshelf"</A>
            </div>
        </EmptyState>
    }
}
