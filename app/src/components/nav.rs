//! The main navigation: a side rail on wide screens, a bottom tab bar on phones (see style.css).

use leptos::prelude::*;
use leptos_router::components::A;

/// One destination in the navigation.
struct Destination {
    href: &'static str,
    label: &'static str,
    icon: &'static str,
}

const DESTINATIONS: [Destination; 6] = [
    Destination {
        href: "/",
        label: "Library",
        icon: "📚",
    },
    Destination {
        href: "/avatars",
        label: "Avatars",
        icon: "🧒",
    },
    Destination {
        href: "/story",
        label: "Story",
        icon: "✏️",
    },
    Destination {
        href: "/book",
        label: "Book",
        icon: "📖",
    },
    Destination {
        href: "/models",
        label: "Models",
        icon: "🎨",
    },
    Destination {
        href: "/settings",
        label: "Settings",
        icon: "⚙️",
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
                                    <span class="nav-icon" aria-hidden="true">{destination.icon}</span>
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
