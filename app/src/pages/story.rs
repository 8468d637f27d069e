//! Writing a story: templates and the page editor.

use leptos::prelude::*;

use crate::components::empty_state::EmptyState;
use crate::components::icon::IconName;

#[component]
pub fn Story() -> impl IntoView {
    view! {
        <header class="page-header">
            <h1>"New story"</h1>
        </header>
        <EmptyState icon=IconName::Story title="Pick a story to begin">
            <p>
                "Here you will choose a ready-made story — bedtime, bath time, a trip to the zoo, a birthday and more — "
                "or start from a blank book. Your child's name goes into the text, and you can change every page."
            </p>
            <p>"You choose a drawing style once, and every picture in the book follows it."</p>
        </EmptyState>
    }
}
