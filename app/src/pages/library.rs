//! The bookshelf: every book and avatar the parent has made.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::empty_state::EmptyState;
use crate::components::icon::IconName;

#[component]
pub fn Library() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"Your bookshelf"</h1>
        </header>
        <EmptyState icon=IconName::Library title="No books yet">
            <p>
                "Make a picture book that stars your own child. Teach the app what your little one looks like from a few photos, "
                "pick a story, and ToddlerStories draws every page — with the same child on each one."
            </p>
            <p>"Everything is made right here on this device. Your photos and stories never leave it."</p>
            <div class="actions">
                <A href="/avatars" attr:class="button primary">"Create an avatar"</A>
                <A href="/story" attr:class="button">"Start a story"</A>
            </div>
        </EmptyState>
    }
}
