//! The app's icons, drawn inline as SVG so they look the same on every device (emoji fonts vary,
//! and some systems have none).

use leptos::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IconName {
    Library,
    Avatar,
    Story,
    Book,
    Palette,
    Settings,
    Check,
    Warning,
    Compass,
}

impl IconName {
    /// Stroke paths on a 24×24 grid.
    fn paths(self) -> &'static [&'static str] {
        match self {
            IconName::Library => &[
                "M4 4h4v16H4z",
                "M10 4h4v16h-4z",
                "M16 5.2l3.6-1 4 15.3-3.6 1z",
            ],
            IconName::Avatar => &[
                "M12 20a8 8 0 1 0 0-16 8 8 0 0 0 0 16z",
                "M9.5 11h.01M14.5 11h.01",
                "M9.5 14.5q2.5 2 5 0",
                "M12 4q-1-2.5 1.5-3",
            ],
            IconName::Story => &["M4 20l1-4.5L16.5 4l3.5 3.5L8.5 19z", "M14 6.5l3.5 3.5"],
            IconName::Book => &[
                "M12 6.5Q8 4 3 5v14q5-1 9 1.5",
                "M12 6.5Q16 4 21 5v14q-5-1-9 1.5z",
            ],
            IconName::Palette => &[
                "M12 3a9 9 0 1 0 0 18c1.5 0 2-1 1.4-2.2-.7-1.3.2-2.8 1.7-2.8H18a3 3 0 0 0 3-3c0-5.5-4-10-9-10z",
                "M7.5 11h.01M10 7.5h.01M14.5 7.5h.01",
            ],
            IconName::Settings => &[
                "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z",
                "M12 2.5v3M12 18.5v3M2.5 12h3M18.5 12h3M5.3 5.3l2.1 2.1M16.6 16.6l2.1 2.1M5.3 18.7l2.1-2.1M16.6 7.4l2.1-2.1",
            ],
            IconName::Check => &[
                "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z",
                "M8 12.5l2.7 2.7L16.5 9",
            ],
            IconName::Warning => &["M12 3.5L22 20H2z", "M12 10v4.5M12 17.5h.01"],
            IconName::Compass => &[
                "M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z",
                "M15.5 8.5l-2 5-5 2 2-5z",
            ],
        }
    }
}

/// A decorative icon; the text beside it carries the meaning, so screen readers skip it.
#[component]
pub fn Icon(name: IconName, #[prop(default = 24)] size: u32) -> impl IntoView {
    view! {
        <svg
            class="icon"
            width=size
            height=size
            viewBox="0 0 24 24"
            fill="none"
            stroke="currentColor"
            stroke-width="1.8"
            stroke-linecap="round"
            stroke-linejoin="round"
            aria-hidden="true"
            focusable="false"
        >
            {name.paths().iter().map(|path| view! { <path d=*path /> }).collect_view()}
        </svg>
    }
}
