//! One module per screen.

pub mod avatars;
pub mod bench;
pub mod book;
pub mod library;
pub mod models;
pub mod not_found;
pub mod settings;
pub mod story;
pub mod story_writer;
