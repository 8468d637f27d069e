//! A new book: a template (or a blank book), who it is about, and how it looks — chosen once,
//! so every page shows the same child in the same style.

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;
use stories::{Book, BookSetup, Child, Drawing, Pronouns, Style, templates};

use crate::pages::avatars::ErrorNote;
use crate::storage;
use crate::studio::{self, Preferences};

#[component]
pub fn Story() -> impl IntoView {
    let all = StoredValue::new(templates());
    let template = RwSignal::new(Some(all.get_value()[0].id.clone()));
    let name = RwSignal::new(String::new());
    let pronouns = RwSignal::new(Pronouns::They);
    let companion = RwSignal::new(String::new());
    let avatar = RwSignal::new(String::new());
    let character = RwSignal::new(String::new());
    let style = RwSignal::new(Style::Watercolour);
    let error = RwSignal::new(None::<String>);
    let avatars = LocalResource::new(studio::avatars);
    let navigate = use_navigate();
    let create = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let chosen = template
            .get_untracked()
            .and_then(|id| all.get_value().into_iter().find(|t| t.id == id));
        let preferences = Preferences::read();
        let model = studio::default_model();
        let steps = model.defaults.as_ref().map_or(1, |defaults| defaults.steps);
        let id = format!("book-{}", storage::now() as u64);
        let token = avatar.get_untracked();
        let mut book = Book::new(
            id.clone(),
            chosen.as_ref(),
            BookSetup {
                child: Child {
                    name: name.get_untracked().trim().to_owned(),
                    pronouns: pronouns.get_untracked(),
                    companion: companion.get_untracked().trim().to_owned(),
                },
                avatar: (!token.is_empty()).then_some(token),
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
                Err(message) => error.set(Some(message)),
            }
        });
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
                <label>
                    "Avatar"
                    <select data-testid="book-avatar" on:change=move |event| avatar.set(event_target_value(&event))>
                        <option value="">"No avatar (a storybook toddler)"</option>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                avatars.await.unwrap_or_default().into_iter()
                                    .filter(|a| a.eval_loss_after.is_some())
                                    .map(|a| view! { <option value=a.token.clone()>{a.name.clone()}</option> })
                                    .collect_view()
                            })}
                        </Suspense>
                    </select>
                </label>
            </fieldset>
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
