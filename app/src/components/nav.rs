//! The main navigation: a side rail on wide screens, a bottom tab bar on phones (see style.css).

use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::icon::{Icon, IconName};

/// One destination in the navigation.
struct Destination {
    href: &'static str,
    label: &'static str,
    icon: IconName,
}

const DESTINATIONS: [Destination; 6] = [
    Destination {
        href: "/",
        label: "Library",
        icon: IconName::Library,
    },
    Destination {
        href: "/avatars",
        label: "Avatars",
        icon: IconName::Avatar,
    },
    Destination {
        href: "/story",
        label: "Story",
        icon: IconName::Story,
    },
    Destination {
        href: "/book",
        label: "Book",
        icon: IconName::Book,
    },
    Destination {
        href: "/models",
        label: "Models",
        icon: IconName::Palette,
    },
    Destination {
        href: "/settings",
        label: "Settings",
        icon: IconName::Settings,
    },
];

#[component]
pub fn Nav() -> impl IntoView {
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <nav class="nav" aria-label="Main">
            <div class="brand" aria-hidden="true">
                <img src="/icons/icon.svg" alt="" width="36" height="36" />
                <span>"ToddlerStories"</span>
            </div>
            <ul>
                {DESTINATIONS
                    .iter()
                    .map(|destination| {
                        view! {
                            <li>
                                <A href=destination.href exact=true attr:data-testid=format!("nav-{}", destination.label.to_lowercase())>
                                    <span class="nav-icon"><Icon name=destination.icon /></span>
                                    <span class="nav-label">{destination.label}</span>
                                </A>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </nav>
    }
}
