//! The app frame: navigation, the update banner and one route per screen.

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::components::nav::Nav;
use crate::components::update_banner::UpdateBanner;
use crate::pages::{avatars, book, library, models, not_found, settings, story};

#[component]
pub fn App() -> impl IntoView {
    // Work that outlives any one screen keeps its state here.
    avatars::training::AvatarTraining::provide();
    models::ModelWork::provide();
    view! {
        <Router>
            <div class="shell">
                <Nav />
                <div class="content">
                    <UpdateBanner />
                    <main id="main" tabindex="-1">
                        <Routes fallback=not_found::NotFound>
                            <Route path=path!("/") view=library::Library />
                            <Route path=path!("/avatars") view=avatars::Avatars />
                            <Route path=path!("/story") view=story::Story />
                            <Route path=path!("/book") view=book::Book />
                            <Route path=path!("/models") view=models::Models />
                            <Route path=path!("/settings") view=settings::Settings />
                        </Routes>
                    </main>
                </div>
            </div>
        </Router>
    }
}
