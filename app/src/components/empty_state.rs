//! The friendly placeholder a screen shows before the parent has made anything.

use leptos::prelude::*;

use crate::components::icon::{Icon, IconName};

#[component]
pub fn EmptyState(
    /// A large decorative picture.
    icon: IconName,
    /// One short sentence: what is missing.
    title: &'static str,
    /// What this screen will do for the parent, in plain words.
    children: Children,
) -> impl IntoView {
    view! {
        <section class="empty-state" data-testid="empty-state">
            <div class="empty-icon"><Icon name=icon size=64 /></div>
            <h2>{title}</h2>
            <div class="empty-body">{children()}</div>
        </section>
    }
}
