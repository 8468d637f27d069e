//! The book's cast in the editor: who else is in the pictures besides the child.

use leptos::prelude::*;
use stories::Book as BookData;

use crate::studio;

/// Who else is in the book: a brother or sister, a friend, a pet, each drawn from their own
/// avatar or from a description; each page then says who is in its picture.
#[component]
pub fn CastEditor(
    book: RwSignal<Option<BookData>>,
    edit: StoredValue<impl Fn(Box<dyn FnOnce(&mut BookData)>) + Send + Sync + 'static>,
) -> impl IntoView {
    let avatars = LocalResource::new(studio::avatars);
    let name = RwSignal::new(String::new());
    let role = RwSignal::new("sibling".to_owned());
    let avatar = RwSignal::new(String::new());
    let card = RwSignal::new(String::new());
    let add = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        let name_now = name.get_untracked().trim().to_owned();
        if name_now.is_empty() {
            return;
        }
        let member = stories::CastMember {
            name: name_now,
            role: match role.get_untracked().as_str() {
                "friend" => stories::Role::Friend,
                "pet" => stories::Role::Pet,
                _ => stories::Role::Sibling,
            },
            avatar: Some(avatar.get_untracked()).filter(|token| !token.is_empty()),
            card: card.get_untracked().trim().to_owned(),
        };
        edit.with_value(|edit| edit(Box::new(move |book| book.cast.push(member))));
        name.set(String::new());
        card.set(String::new());
    };
    let cast = move || {
        book.with(|book| {
            book.as_ref()
                .map(|book| book.cast.clone())
                .unwrap_or_default()
        })
    };
    view! {
        <section class="card cast" data-testid="cast">
            <h2>"Who else is in this book"</h2>
            <p class="muted">
                "A brother or sister, a friend or the family pet can be in the pictures too, drawn from their own "
                "avatar or from a few words about them. Up to two of them fit in one picture beside your child."
            </p>
            <ul class="cast-list">
                {move || cast().into_iter().enumerate().map(|(index, member)| {
                    let drawn = match &member.avatar {
                        Some(_) => "drawn from their avatar",
                        None => "drawn from the description",
                    };
                    let label = format!("Remove {}", member.name);
                    view! {
                        <li>
                            {format!("{} ({drawn})", member.name)}
                            <button class="button" aria-label=label
                                on:click=move |_| edit.with_value(|edit| edit(Box::new(move |book| {
                                    if index < book.cast.len() {
                                        book.cast.remove(index);
                                    }
                                    // Pages keep naming the same people.
                                    for page in &mut book.pages {
                                        if let Some(on) = &mut page.cast {
                                            on.retain(|&other| other != index);
                                            on.iter_mut().filter(|other| **other > index).for_each(|other| *other -= 1);
                                        }
                                    }
                                })))>"Remove"</button>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <form class="form" on:submit=add>
                <label>
                    "Their name"
                    <input type="text" maxlength="40" prop:value=name on:input=move |event| name.set(event_target_value(&event)) />
                </label>
                <label>
                    "Who they are"
                    <select on:change=move |event| role.set(event_target_value(&event))>
                        <option value="sibling">"Brother or sister"</option>
                        <option value="friend">"Friend"</option>
                        <option value="pet">"Pet"</option>
                    </select>
                </label>
                <label>
                    "Drawn from"
                    <select on:change=move |event| avatar.set(event_target_value(&event))>
                        <option value="">"The description only"</option>
                        <Suspense fallback=|| ()>
                            {move || Suspend::new(async move {
                                let own = book.with_untracked(|book| book.as_ref().and_then(|book| book.avatar.clone()));
                                avatars.await.unwrap_or_default().into_iter()
                                    .filter(|choice| choice.is_ready() && Some(&choice.token) != own.as_ref())
                                    .map(|choice| view! { <option value=choice.token.clone()>{format!("The avatar {}", choice.name)}</option> })
                                    .collect_view()
                            })}
                        </Suspense>
                    </select>
                </label>
                <label>
                    "How they look (the same words on every page)"
                    <input type="text" maxlength="120" placeholder="short blond hair, red jumper" prop:value=card
                        on:input=move |event| card.set(event_target_value(&event)) />
                </label>
                <button type="submit" class="button">"Add to the book"</button>
            </form>
        </section>
    }
}
