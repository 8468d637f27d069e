//! The note a screen shows when something it tried went wrong, with an OK button to dismiss it.

use leptos::prelude::*;

/// Shows `error`'s message while there is one; OK clears it.
#[component]
pub fn ErrorNote(error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error.get().map(|message| {
            view! {
                <div class="notice error" role="alert" data-testid="error">
                    <p>{message}</p>
                    <button class="button" on:click=move |_| error.set(None)>"OK"</button>
                </div>
            }
        })
    }
}
