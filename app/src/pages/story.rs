//! A new book: a template, a story the writer writes from the parent's idea, or a blank book; who
//! it is about, and how it looks — chosen once, so every page shows the same child in the same
//! style.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_query_map};
use stories::{Avatar, Book, BookSetup, Child, Drawing, Pronouns, Style, likely_avatar, templates};

use crate::components::error_note::ErrorNote;
use crate::pages::story_writer::WriteWithMe;
use crate::storage;
use crate::studio::{self, Preferences};

/// The choice that writes the story from the parent's idea (not a template id).
const WRITE: &str = "write";

/// The Story form's address with `token`'s avatar chosen (the avatar cards link here).
pub fn story_with_avatar(token: &str) -> String {
    format!("/story?avatar={}", js_sys::encode_uri_component(token))
}

#[component]
pub fn Story() -> impl IntoView {
    let all = StoredValue::new(templates());
    let template = RwSignal::new(Some(all.get_value()[0].id.clone()));
    let name = RwSignal::new(String::new());
    let pronouns = RwSignal::new(Pronouns::They);
    let companion = RwSignal::new(String::new());
    // The parent's own pick: `None` follows the likely avatar, `Some("")` is "no avatar".
    let picked = RwSignal::new(use_query_map().with_untracked(|query| query.get("avatar")));
    let character = RwSignal::new(String::new());
    let style = RwSignal::new(Style::Watercolour);
    let error = RwSignal::new(None::<String>);
    let written = RwSignal::new(None::<stories::writer::WrittenStory>);
    let avatars = LocalResource::new(studio::avatars);
    let all_avatars = move || {
        avatars
            .with(|loaded| loaded.as_ref().and_then(|list| list.as_ref().ok()).cloned())
            .unwrap_or_default()
    };
    let ready_avatars = move || {
        all_avatars()
            .into_iter()
            .filter(Avatar::is_ready)
            .collect::<Vec<_>>()
    };
    let chosen = Memo::new(move |_| {
        let list = ready_avatars();
        match picked.get().as_deref() {
            Some("") => None,
            Some(token) => list
                .iter()
                .find(|avatar| avatar.token == token)
                .or_else(|| likely_avatar(&list, &name.get()))
                .cloned(),
            None => likely_avatar(&list, &name.get()).cloned(),
        }
    });
    // The child's name follows the avatar while the parent has not typed another one.
    Effect::new(move |previous: Option<Option<String>>| {
        let now = chosen.get().map(|avatar| avatar.name);
        let typed = name.get_untracked();
        let follows = typed.trim().is_empty()
            || previous
                .flatten()
                .is_some_and(|before| before.trim().eq_ignore_ascii_case(typed.trim()));
        if follows && let Some(avatar_name) = &now {
            name.set(avatar_name.clone());
        }
        now
    });
    let navigate = use_navigate();
    let create = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        // Until the avatars are read (milliseconds) the book would star nobody.
        if avatars.with_untracked(Option::is_none) {
            return;
        }
        let chosen_template = match template.get_untracked().as_deref() {
            Some(WRITE) => match written.get_untracked() {
                Some(story) => Some(story.template()),
                None => {
                    error.set(Some(
                        "Write the story first (\"Write the story\" under your idea), or pick one of the stories."
                            .into(),
                    ));
                    return;
                }
            },
            Some(id) => all.get_value().into_iter().find(|t| t.id == id),
            None => None,
        };
        let preferences = Preferences::read();
        let model = studio::default_model();
        let steps = model.defaults.as_ref().map_or(1, |defaults| defaults.steps);
        let id = format!("book-{}", storage::now() as u64);
        let mut book = Book::new(
            id.clone(),
            chosen_template.as_ref(),
            BookSetup {
                child: Child {
                    name: name.get_untracked().trim().to_owned(),
                    pronouns: pronouns.get_untracked(),
                    companion: companion.get_untracked().trim().to_owned(),
                },
                avatar: chosen.get_untracked().map(|avatar| avatar.token),
                character: character.get_untracked().trim().to_owned(),
                style: style.get_untracked(),
                drawing: Drawing {
                    model: model.folder(),
                    steps,
                    size: preferences.picture_size,
                    variants: preferences.variants,
                    seed: (js_sys::Math::random() * 1e9) as u64,
                },
            },
            storage::now(),
        );
        let navigate = navigate.clone();
        leptos::task::spawn_local(async move {
            match studio::save_book(&mut book).await {
                Ok(()) => navigate(&format!("/book?id={id}"), Default::default()),
                Err(message) => {
                    error.try_set(Some(message));
                }
            }
        });
    };
    let is_chosen = move |token: &str| {
        chosen.with(|avatar| avatar.as_ref().map(|a| a.token.as_str()) == Some(token))
    };
    let avatar_choice = move || {
        let ready = ready_avatars();
        view! {
            <label>
                "Avatar"
                <select data-testid="book-avatar" on:change=move |event| picked.set(Some(event_target_value(&event)))>
                    <option value="" prop:selected=move || chosen.with(Option::is_none)>"No avatar (a storybook toddler)"</option>
                    {ready.into_iter().map(|avatar| {
                        let token = avatar.token.clone();
                        view! { <option value=avatar.token.clone() prop:selected=move || is_chosen(&token)>{avatar.name.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
        }
    };
    let who_is_drawn = move || {
        // Nothing to say until the avatars are read: not a moment of "no avatar yet".
        if avatars.with(Option::is_none) {
            return ().into_any();
        }
        let learning: Vec<String> = all_avatars()
            .into_iter()
            .filter(|avatar| !avatar.is_ready())
            .map(|avatar| avatar.name)
            .collect();
        let still_learning = (!learning.is_empty()).then(|| {
            format!(
                " ({} still learning: finish {} on the Avatars screen first.)",
                learning.join(", "),
                if learning.len() == 1 { "it" } else { "them" }
            )
        });
        match chosen.get() {
            Some(avatar) => view! {
                <p class="notice ok" data-testid="book-stars">
                    {format!("Every picture will show {}, as the avatar learned from your photos.", avatar.name)}
                </p>
            }.into_any(),
            None if ready_avatars().is_empty() => view! {
                <p class="notice warn" data-testid="book-stars">
                    "There is no avatar yet, so the pictures will show a storybook toddler, not your child. "
                    <A href="/avatars">"Make an avatar"</A>" first to put your child in the book."
                    {still_learning}
                </p>
            }.into_any(),
            None => view! {
                <p class="notice warn" data-testid="book-stars" role="status">
                    "No avatar is chosen, so the pictures will show a storybook toddler, not your child. "
                    "Choose your child's avatar above to put them in the book."
                </p>
            }.into_any(),
        }
    };
    view! {
        <header class="page-header">
            <h1>"New story"</h1>
        </header>
        <ErrorNote error />
        <form class="form story-form" on:submit=create>
            <fieldset class="card">
                <legend>"Pick a story"</legend>
                <div class="template-grid" role="radiogroup">
                    {all.get_value().into_iter().map(|t| {
                        let id = t.id.clone();
                        let checked_id = id.clone();
                        view! {
                            <label class="template-choice">
                                <input type="radio" name="template" value=id.clone() data-testid=format!("template-{id}")
                                    prop:checked=move || template.get().as_deref() == Some(checked_id.as_str())
                                    on:change=move |_| template.set(Some(id.clone())) />
                                <span class="template-title">{t.title.replace("{name}", "…").replace("{Their}", "Their")}</span>
                                <span class="muted">{format!("{} · {} pages", t.summary, t.pages.len())}</span>
                            </label>
                        }
                    }).collect_view()}
                    <label class="template-choice">
                        <input type="radio" name="template" value=WRITE data-testid="template-write"
                            prop:checked=move || template.get().as_deref() == Some(WRITE)
                            on:change=move |_| template.set(Some(WRITE.to_owned())) />
                        <span class="template-title">"Write it with me"</span>
                        <span class="muted">"One line from you; the story writer writes the pages on this device."</span>
                    </label>
                    <label class="template-choice">
                        <input type="radio" name="template" value="blank" data-testid="template-blank"
                            prop:checked=move || template.get().is_none() on:change=move |_| template.set(None) />
                        <span class="template-title">"A blank book"</span>
                        <span class="muted">"Write your own pages."</span>
                    </label>
                </div>
            </fieldset>
            <fieldset class="card">
                <legend>"Who is it about?"</legend>
                <TextField label="Child's name" placeholder="Mia" max_length=40 test_id="child-name" value=name />
                <label>
                    "Pronouns"
                    <select data-testid="pronouns" on:change=move |event| pronouns.set(Pronouns::from_key(&event_target_value(&event)))>
                        {Pronouns::ALL.into_iter().map(|p| view! {
                            <option value=p.key() selected=move || pronouns.get() == p>{p.label()}</option>
                        }).collect_view()}
                    </select>
                </label>
                <TextField label="Who comes along" placeholder="Daddy, Grandma, Teddy" max_length=40 test_id="companion"
                    value=companion />
                {avatar_choice}
                {who_is_drawn}
            </fieldset>
            {move || (template.get().as_deref() == Some(WRITE)).then(|| view! {
                <WriteWithMe name pronouns companion written />
            })}
            <fieldset class="card">
                <legend>"How the pictures look"</legend>
                <TextField label="Character card (the same on every page)" placeholder="curly brown hair, yellow raincoat, red boots"
                    max_length=160 test_id="character" value=character />
                <label>
                    "Style"
                    <select data-testid="style" on:change=move |event| style.set(Style::from_key(&event_target_value(&event)))>
                        {Style::ALL.into_iter().map(|s| view! {
                            <option value=s.key() selected=move || style.get() == s>{s.label()}</option>
                        }).collect_view()}
                    </select>
                </label>
            </fieldset>
            <button type="submit" class="button primary" data-testid="create-book">"Make the book"</button>
        </form>
    }
}

/// A labelled one-line text input bound to `value`.
#[component]
fn TextField(
    label: &'static str,
    placeholder: &'static str,
    max_length: u32,
    test_id: &'static str,
    value: RwSignal<String>,
) -> impl IntoView {
    view! {
        <label>
            {label}
            <input type="text" maxlength=max_length placeholder=placeholder data-testid=test_id
                prop:value=value on:input=move |event| value.set(event_target_value(&event)) />
        </label>
    }
}
