//! The bookshelf: every book and avatar the parent has made.

use leptos::prelude::*;
use leptos_router::components::A;
use stories::Book;

use crate::components::empty_state::EmptyState;
use crate::components::error_note::ErrorNote;
use crate::components::icon::IconName;
use crate::components::stored_picture::StoredPicture;
use crate::pages::avatars::training::AvatarTraining;
use crate::storage::{self, AVATAR_PREVIEW, BOOKS_DIR};
use crate::studio::{self, avatar_path, book_path};

#[component]
pub fn Library() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let avatars_changed = AvatarTraining::get().changed;
    let shelf = LocalResource::new(move || {
        version.track();
        avatars_changed.track();
        async { (studio::books().await, studio::avatars().await) }
    });
    let error = RwSignal::new(None::<String>);
    view! {
        <header class="page-header">
            <h1>"Your bookshelf"</h1>
            <div class="actions">
                <A href="/story" attr:class="button primary" attr:data-testid="new-story">"Start a story"</A>
            </div>
        </header>
        <ErrorNote error />
        <Suspense fallback=|| view! { <p>"Looking…"</p> }>
            {move || Suspend::new(async move {
                let (books, avatars) = shelf.await;
                let books = books.unwrap_or_default();
                let avatars = avatars.unwrap_or_default();
                if books.is_empty() && avatars.is_empty() {
                    return view! { <Welcome /> }.into_any();
                }
                view! {
                    <section aria-labelledby="books-heading">
                        <h2 id="books-heading">"Books"</h2>
                        {books.is_empty().then(|| view! { <p class="muted">"No books yet: start a story."</p> })}
                        <ul class="card-grid" data-testid="book-list">
                            {books.into_iter().map(|book| view! {
                                <BookCard book error on_delete=Callback::new(move |()| version.update(|v| *v += 1)) />
                            }).collect_view()}
                        </ul>
                    </section>
                    <section aria-labelledby="avatars-heading">
                        <h2 id="avatars-heading">"Avatars"</h2>
                        <ul class="card-grid" data-testid="shelf-avatars">
                            {avatars.into_iter().map(|avatar| view! {
                                <li class="card small-card">
                                    <StoredPicture path=Some(avatar_path(&avatar.token, AVATAR_PREVIEW)) alt=String::new()
                                        placeholder=IconName::Avatar />
                                    <A href="/avatars">{avatar.name.clone()}</A>
                                </li>
                            }).collect_view()}
                        </ul>
                        <A href="/avatars" attr:class="button">"Manage avatars"</A>
                    </section>
                }.into_any()
            })}
        </Suspense>
    }
}

#[component]
fn Welcome() -> impl IntoView {
    view! {
        <EmptyState icon=IconName::Library title="No books yet">
            <p>
                "Make a picture book that stars your own child. Teach the app what your little one looks like from a few photos, "
                "pick a story, and ToddlerStories draws every page — with the same child on each one."
            </p>
            <p>"Everything is made right here on this device. Your photos and stories never leave it."</p>
            <div class="actions">
                <A href="/avatars" attr:class="button primary">"Create an avatar"</A>
                <A href="/story" attr:class="button">"Start a story"</A>
            </div>
        </EmptyState>
    }
}

#[component]
fn BookCard(book: Book, error: RwSignal<Option<String>>, on_delete: Callback<()>) -> impl IntoView {
    let cover = book
        .pages
        .iter()
        .find_map(|page| page.picture())
        .map(|picture| book_path(&book.id, &picture.file));
    let id = book.id.clone();
    let title = book.title.clone();
    let delete = {
        let (id, title) = (id.clone(), title.clone());
        move |_| {
            if !storage::confirm(&format!(
                "Delete the book “{title}” and its pictures from this device?"
            )) {
                return;
            }
            let id = id.clone();
            leptos::task::spawn_local(async move {
                if let Err(message) = storage::remove(&format!("{BOOKS_DIR}/{id}")).await {
                    error.try_set(Some(message));
                }
                on_delete.try_run(());
            });
        }
    };
    let drawn = book
        .pages
        .iter()
        .filter(|page| page.picture().is_some())
        .count();
    view! {
        <li class="card book-card" data-testid="book-card">
            <A href=format!("/book?id={id}&read=1")>
                <StoredPicture path=cover alt=String::new() placeholder=IconName::Book />
                <h3>{title.clone()}</h3>
            </A>
            <p class="muted">{format!("{} pages · {} with pictures", book.pages.len(), drawn)}</p>
            <div class="actions">
                <A href=format!("/book?id={id}") attr:class="button">"Edit"</A>
                <button class="button danger" on:click=delete data-testid="delete-book">"Delete"</button>
            </div>
        </li>
    }
}
