//! What the product screens ask of the engine: the parent's preferences, the model on the
//! device, avatars and books in storage, drawing a page, training an avatar.

use std::cell::RefCell;

use protocol::store::{AVATAR_FILE, AVATAR_LORA_FILE, AVATARS_DIR, avatar_folder};
use protocol::{Backend, Event, ModelSource, Precision, Request};
use stories::{Avatar, Book};

use crate::engine::{EngineFailure, EngineWorker};
use crate::model_store::{self, ModelEntry, Stored};
use crate::storage::{self, AVATAR_INFO, BOOK_FILE, BOOKS_DIR};

/// Preferences kept in `localStorage` (Settings; odd values only by hand, e.g. tests).
pub struct Preferences {
    pub backend: Backend,
    /// Picture width and height.
    pub picture_size: usize,
    pub variants: usize,
    pub avatar_steps: usize,
    pub avatar_resolution: usize,
    /// Decode with the model's own (full) VAE instead of the fast decoder: the finest pictures,
    /// at several UNet steps' worth of time each.
    pub full_decoder: bool,
    /// `None`: the engine chooses (f16 where the graphics chip computes in it).
    pub precision: Option<Precision>,
}

fn stored(key: &str) -> Option<String> {
    web_sys::window()?
        .local_storage()
        .ok()??
        .get_item(key)
        .ok()?
}

pub fn set_preference(key: &str, value: &str) {
    if let Some(storage) =
        web_sys::window().and_then(|window| window.local_storage().ok().flatten())
    {
        let _ = storage.set_item(key, value);
    }
}

pub const BACKEND_KEY: &str = "toddler.backend";
pub const SIZE_KEY: &str = "toddler.picture_size";
/// `full` for the model's own VAE; anything else (or nothing) for the fast decoder.
pub const DECODER_KEY: &str = "toddler.decoder";
/// `f16` or `f32`; anything else (or nothing): the engine chooses.
pub const PRECISION_KEY: &str = "toddler.precision";

impl Preferences {
    pub fn read() -> Preferences {
        let number = |key: &str, default: usize| {
            stored(key)
                .and_then(|value| value.parse().ok())
                .filter(|value| *value > 0)
                .unwrap_or(default)
        };
        let model_size = default_model()
            .defaults
            .as_ref()
            .map_or(512, |defaults| defaults.width);
        Preferences {
            backend: stored(BACKEND_KEY)
                .and_then(|name| Backend::parse(&name))
                .unwrap_or(Backend::Auto),
            picture_size: number(SIZE_KEY, model_size),
            variants: number("toddler.variants", 2).min(4),
            avatar_steps: number("toddler.avatar_steps", 300),
            avatar_resolution: number("toddler.avatar_resolution", 512),
            full_decoder: stored(DECODER_KEY).as_deref() == Some("full"),
            precision: stored(PRECISION_KEY).and_then(|name| Precision::parse(&name)),
        }
    }
}

pub fn default_model() -> &'static ModelEntry {
    let registry = model_store::registry();
    registry
        .models
        .iter()
        .find(|model| model.repo == registry.default_model)
        .expect("the registry lists its default model")
}

/// The model's store folder, or a message for the parent when it is not downloaded.
pub async fn model_ready() -> Result<String, String> {
    let model = default_model();
    match model_store::status(model).await? {
        Stored::Ready { .. } => Ok(model.folder()),
        _ => Err(format!(
            "The picture model ({}) is not on this device yet. Download it once on the Models screen; after that everything works offline.",
            model.name
        )),
    }
}

/// The story writer's model on this device (the registry's default writer first, then any other
/// downloaded): where the engine reads it, its GGUF file and its name.
pub async fn writer_model() -> Option<(ModelSource, String, &'static str)> {
    let registry = model_store::registry();
    let mut writers: Vec<&ModelEntry> = registry
        .models
        .iter()
        .filter(|model| model.role == "writer")
        .collect();
    writers.sort_by_key(|model| !model.is_default());
    for writer in writers {
        if let Ok(Stored::Ready { .. }) = model_store::status(writer).await {
            let file = writer.files.first()?.path.clone();
            let source = ModelSource::Stored {
                folder: writer.folder(),
            };
            return Some((source, file, writer.name.as_str()));
        }
    }
    None
}

/// The registry's default story writer.
pub fn default_writer() -> Option<&'static ModelEntry> {
    let registry = model_store::registry();
    let repo = registry.default_writer.as_deref()?;
    registry.models.iter().find(|model| model.repo == repo)
}

/// Writes a story from `idea` with the writer on this device, passing each piece to `on_event`
/// as it is written; `on_start` receives the request id (for Cancel).
pub async fn write_story(
    idea: stories::writer::StoryIdea,
    seed: u64,
    on_start: impl FnOnce(u32),
    on_event: impl FnMut(&Event),
) -> Result<protocol::StoryWritten, String> {
    let (source, file, _) = writer_model().await.ok_or(
        "The story writer is not on this device yet. Download it once on the Models screen (optional).",
    )?;
    let preferences = Preferences::read();
    let engine = EngineWorker::get()?;
    let id = engine.next_id();
    on_start(id);
    let request = Request::WriteStory {
        id,
        source,
        file: Some(file),
        backend: preferences.backend,
        precision: preferences.precision,
        idea,
        seed,
    };
    match engine.call(id, &request, on_event).await? {
        (Event::StoryWritten { result, .. }, _) => Ok(result),
        _ => Err("The story writer stopped before it finished.".into()),
    }
}

/// The fast decoder (TAESD) when it is on the device and the parent has not asked for the
/// finest pictures; `None`: the model's own VAE.
pub async fn decoder() -> Option<ModelSource> {
    if Preferences::read().full_decoder {
        return None;
    }
    let registry = model_store::registry();
    let decoder = registry
        .models
        .iter()
        .find(|model| model.repo == registry.default_decoder)?;
    match model_store::status(decoder).await {
        Ok(Stored::Ready { .. }) => Some(ModelSource::Stored {
            folder: decoder.folder(),
        }),
        _ => None,
    }
}

/// Reads an imported file (`name`, for the message) as the engine will use it, before the app
/// stores it: a damaged avatar or LoRA is refused now, in words, not when a page is drawn.
pub async fn check_file(bytes: &[u8], name: &str, kind: protocol::FileKind) -> Result<(), String> {
    let url = crate::storage::object_url(bytes, "application/octet-stream")
        .ok_or("could not prepare the file")?;
    let engine = EngineWorker::get()?;
    let id = engine.next_id();
    let request = protocol::Request::CheckFile {
        id,
        url: url.clone(),
        name: name.to_owned(),
        kind,
    };
    let checked = engine.call(id, &request, |_| {}).await.map(|_| ());
    let _ = web_sys::Url::revoke_object_url(&url);
    // The engine's message starts with the file's name, which the app says itself.
    checked.map_err(|failure| match failure {
        EngineFailure::Failed(message) => message
            .strip_prefix(&format!("{name}: "))
            .map_or(message.clone(), str::to_owned),
        EngineFailure::Stopped(message) => message,
    })
}

pub fn avatar_path(token: &str, name: &str) -> String {
    format!("{AVATARS_DIR}/{}/{name}", avatar_folder(token))
}

pub fn book_path(id: &str, name: &str) -> String {
    format!("{BOOKS_DIR}/{id}/{name}")
}

pub async fn avatars() -> Result<Vec<Avatar>, String> {
    let mut avatars = Vec::new();
    for folder in storage::list(AVATARS_DIR).await? {
        if let Some(avatar) =
            storage::read_json::<Avatar>(&format!("{AVATARS_DIR}/{folder}/{AVATAR_INFO}")).await?
        {
            avatars.push(avatar);
        }
    }
    avatars.sort_by(|a, b| b.updated.total_cmp(&a.updated));
    Ok(avatars)
}

pub async fn save_avatar(avatar: &Avatar) -> Result<(), String> {
    storage::write_json(&avatar_path(&avatar.token, AVATAR_INFO), avatar).await
}

pub async fn books() -> Result<Vec<Book>, String> {
    let mut books = Vec::new();
    for id in storage::list(BOOKS_DIR).await? {
        if let Some(book) = storage::read_json::<Book>(&book_path(&id, BOOK_FILE)).await? {
            books.push(book);
        }
    }
    books.sort_by(|a, b| b.updated.total_cmp(&a.updated));
    Ok(books)
}

pub async fn book(id: &str) -> Result<Book, String> {
    storage::read_json::<Book>(&book_path(id, BOOK_FILE))
        .await?
        .ok_or_else(|| "This book is not on this device any more.".to_owned())
}

pub async fn save_book(book: &mut Book) -> Result<(), String> {
    book.updated = storage::now();
    storage::write_json(&book_path(&book.id, BOOK_FILE), book).await
}

/// A stored picture as an `<img>` URL.
pub async fn picture_url(path: &str) -> Option<String> {
    let bytes = storage::read(path).await.ok()??;
    storage::object_url(&bytes, "image/png")
}

/// What the worker holds: the model folder, its decoder, the avatars and the style LoRA.
type Loaded = (
    String,
    Option<ModelSource>,
    Vec<String>,
    Option<protocol::LoraSource>,
);

thread_local! {
    /// What the worker holds now, so pages don't reload it.
    static LOADED: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

/// Loads the model with every one of `avatars`' files (and their LoRAs) and a book's `style`
/// LoRA, unless the worker already has exactly that.
pub async fn ensure_loaded(
    avatars: &[String],
    style: Option<protocol::LoraSource>,
) -> Result<(), String> {
    let folder = model_ready().await?;
    let decoder = decoder().await;
    let wanted = (
        folder.clone(),
        decoder.clone(),
        avatars.to_vec(),
        style.clone(),
    );
    if LOADED.with(|loaded| loaded.borrow().as_ref() == Some(&wanted)) {
        return Ok(());
    }
    let mut loras = Vec::new();
    let mut embeddings = Vec::new();
    for token in avatars {
        let path = avatar_path(token, AVATAR_FILE);
        if storage::read(&path).await?.is_none() {
            return Err("An avatar of this book has not finished learning yet. Finish it on the Avatars screen, or pick another avatar.".into());
        }
        // The stronger likeness: the avatar's LoRA draws with it, at full strength.
        let lora = avatar_path(token, AVATAR_LORA_FILE);
        if storage::size(&lora).await? > 0 {
            loras.push(protocol::LoraSource {
                url: format!("opfs:{lora}"),
                scale: 1.0,
            });
        }
        embeddings.push(format!("opfs:{path}"));
    }
    loras.extend(style.clone());
    let engine = EngineWorker::get()?;
    let id = engine.next_id();
    let request = Request::Load {
        id,
        source: ModelSource::Stored { folder },
        decoder,
        backend: Preferences::read().backend,
        precision: Preferences::read().precision,
        embeddings,
        loras,
    };
    LOADED.with(|loaded| *loaded.borrow_mut() = None);
    engine
        .call(id, &request, |_| {})
        .await
        .map_err(|failure| match (&style, failure) {
            // The engine names the file; the parent knows it as the book's style.
            (Some(style), EngineFailure::Failed(message)) if message.contains(&style.url) => format!(
                "The book's picture style add-on does not fit this picture model, so nothing was drawn. Remove it (or add one made for this model) and draw again. ({message})"
            ),
            (_, failure) => failure.into(),
        })?;
    LOADED.with(|loaded| *loaded.borrow_mut() = Some(wanted));
    Ok(())
}

/// Whether the engine computes on the processor: the parent chose it, or the browser offers
/// no WebGPU adapter.
pub async fn draws_on_processor() -> bool {
    Preferences::read().backend == Backend::Cpu
        || !matches!(crate::gpu::probe().await, crate::gpu::GpuStatus::Adapter(_))
}

/// After training, the worker's model no longer matches what was loaded.
pub fn forget_loaded() {
    LOADED.with(|loaded| *loaded.borrow_mut() = None);
}

/// Draws page `index`, variant `variant` of `book` and stores the PNG; returns its file name
/// and, when the child's avatar has a face reference, how much the picture looks like the
/// child. `on_start` receives the request id (for Cancel).
pub async fn draw_page(
    book: &Book,
    index: usize,
    variant: usize,
    on_start: impl FnOnce(u32),
) -> Result<Option<(String, Option<stories::PictureLikeness>)>, String> {
    let style = book.style_lora.as_ref().map(|style| protocol::LoraSource {
        url: format!("opfs:{}", book_path(&book.id, Book::STYLE_LORA_FILE)),
        scale: style.scale,
    });
    ensure_loaded(&book.avatars(), style).await?;
    // The likeness score is the child's: the avatar every page shows.
    let child_face = match &book.avatar {
        Some(token) => avatars()
            .await?
            .into_iter()
            .find(|avatar| &avatar.token == token)
            .and_then(|avatar| avatar.face)
            .map(|descriptor| protocol::FaceReference {
                token: token.clone(),
                descriptor,
            }),
        None => None,
    };
    let engine = EngineWorker::get()?;
    let id = engine.next_id();
    on_start(id);
    let request = Request::Generate {
        id,
        request: protocol::Generate {
            prompt: book.prompt(index),
            negative_prompt: String::new(),
            steps: book.drawing.steps,
            guidance: 0.0,
            width: book.drawing.size,
            height: book.drawing.size,
            seed: book.seed(index, variant),
            scheduler: None,
            noise_url: None,
            return_latents: false,
            likeness_of: child_face.into_iter().collect(),
        },
    };
    let (event, png) = engine.call(id, &request, |_| {}).await?;
    let likeness = match event {
        Event::Cancelled { .. } => return Ok(None),
        Event::Generated { result, .. } => {
            result.likeness.map(|likeness| stories::PictureLikeness {
                faces: likeness.faces,
                score: likeness.scores.first().copied(),
            })
        }
        _ => None,
    };
    let png = png.ok_or("the picture engine sent no picture")?;
    let file = Book::picture_file(index, variant);
    storage::write(&book_path(&book.id, &file), &png).await?;
    Ok(Some((file, likeness)))
}
