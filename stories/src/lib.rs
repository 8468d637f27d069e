//! Books: the built-in story templates, a book's pages, and the picture prompt of each page.
//!
//! Consistency across pages comes from the prompt: every page's picture is drawn from the same
//! avatar token, the same character card (hair, clothes: set once per book) and the same style,
//! with only the scene changing; and from seeds stored per page, so a book re-renders the same.
//!
//! The modules, each depending only on those before it:
//! - `templates`: the built-in story templates, and the child who fills their placeholders;
//! - `book`: a book, its pages and the pictures drawn for them, its cast, style and settings;
//! - `prompt`: a page's picture prompt and its seed;
//! - `avatar`: the avatar record, its training in words, the avatar a new book most likely stars;
//! - `likeness`: the face matcher's likeness scores in words;
//! - [`photo_check`]: advice on a photo before an avatar learns from it;
//! - [`writer`]: the story writer's instructions, frame and checks (the engine runs the model).

mod avatar;
mod book;
#[cfg(test)]
mod fixtures;
mod likeness;
pub mod photo_check;
mod prompt;
mod templates;
pub mod writer;

pub use avatar::{Avatar, likely_avatar};
pub use book::{
    Book, BookSetup, CastMember, Drawing, MAX_ON_A_PAGE, Page, PictureLikeness, Role, Style,
    StyleLora, Variant,
};
pub use likeness::{CLOSE_LIKENESS, SOME_LIKENESS, avatar_face_words, likeness_words};
pub use templates::{Child, Pronouns, Template, TemplatePage, templates};
