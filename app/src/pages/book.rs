//! Reading a finished book.

use leptos::prelude::*;

use crate::components::empty_state::EmptyState;
use crate::components::icon::IconName;

#[component]
pub fn Book() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"Read"</h1>
        </header>
        <EmptyState icon=IconName::Book title="No book is open">
            <p>
                "Finished books open here, one big page at a time. Turn pages with a tap, a swipe or the arrow keys, "
                "have the story read aloud, print it or save it as a PDF."
            </p>
        </EmptyState>
    }
}
