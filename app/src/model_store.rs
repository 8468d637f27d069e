//! The model manager: which models exist (`models/registry.json`), and the on-device store
//! (OPFS, `models/{owner--name--revision}/`) that downloads fill and the engine worker reads.
//!
//! Downloads resume: every file is written where the last attempt stopped (HTTP Range), and
//! what has arrived is committed to disk every [`COMMIT_BYTES`] and whenever a download breaks.
//! A model counts as ready only once every file has its full length, each safetensors header
//! describes exactly its file, and `complete.json` has been written.

use std::sync::OnceLock;

use js_sys::{Reflect, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemRemoveOptions,
    ReadableStreamDefaultReader, RequestInit, Response,
};

use crate::engine::EngineFailure;
use crate::opfs::{
    describe, directory, file, file_handle, file_size, is_not_found, open_writable, read_slice,
    root,
};

/// What arrived is committed to disk at least this often (a closed tab loses less).
const COMMIT_BYTES: u64 = 32 << 20;
/// Marks a finished, checked download.
const COMPLETE: &str = "complete.json";
/// Where the parent's own model host is kept (also read by the service worker, see public/sw.js).
const HUB_BASE_KEY: &str = "toddler.hub_base";
const SETTINGS_CACHE: &str = "toddler-settings";
const SETTINGS_HUB_BASE: &str = "/settings/hub-base";

#[derive(Clone, Debug, Deserialize)]
pub struct Registry {
    pub hub_base: String,
    pub default_model: String,
    pub default_decoder: String,
    /// The story writer parents are offered first (a language model; optional).
    #[serde(default)]
    pub default_writer: Option<String>,
    pub models: Vec<ModelEntry>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ModelEntry {
    pub repo: String,
    pub revision: String,
    pub name: String,
    /// `pipeline` (a whole text-to-image model), `decoder` (a VAE such as TAESD) or `writer`
    /// (the story writer's language model: one GGUF file).
    pub role: String,
    pub description: String,
    pub licence: String,
    #[serde(default)]
    pub defaults: Option<Defaults>,
    pub files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Defaults {
    pub steps: usize,
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct FileEntry {
    pub path: String,
    /// For showing sizes before a download; the host's own length is what gets checked.
    pub approx_bytes: u64,
}

impl ModelEntry {
    /// Whether the app uses this model unless the parent picks another.
    pub fn is_default(&self) -> bool {
        let registry = registry();
        self.repo == registry.default_model
            || self.repo == registry.default_decoder
            || registry.default_writer.as_deref() == Some(self.repo.as_str())
    }

    pub fn approx_bytes(&self) -> u64 {
        self.files.iter().map(|file| file.approx_bytes).sum()
    }

    /// The store folder's name.
    pub fn folder(&self) -> String {
        protocol::store::folder_name(&self.repo, &self.revision)
    }

    /// Where the engine reads this model: the store once it is there, else the model host
    /// (the few KB of configs an estimate reads before a download).
    pub async fn source(&self) -> protocol::ModelSource {
        match status(self).await {
            Ok(Stored::Ready { .. }) => protocol::ModelSource::Stored {
                folder: self.folder(),
            },
            _ => protocol::ModelSource::Url {
                base: self.url(&hub_base(), "").trim_end_matches('/').to_owned(),
            },
        }
    }

    /// The type the weights' files store: the hub's `*.fp16.safetensors` hold f16.
    pub fn stored_precision(&self) -> protocol::Precision {
        let half = self
            .files
            .iter()
            .any(|file| file.path.ends_with(".fp16.safetensors"));
        if half {
            protocol::Precision::F16
        } else {
            protocol::Precision::F32
        }
    }

    fn url(&self, hub_base: &str, path: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{path}",
            hub_base.trim_end_matches('/'),
            self.repo,
            self.revision
        )
    }
}

pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        serde_json::from_str(include_str!("../../models/registry.json"))
            .expect("models/registry.json is checked by the tests")
    })
}

/// The model host downloads come from: the parent's own, else the registry's (the hub).
pub fn hub_base() -> String {
    local_storage()
        .and_then(|storage| storage.get_item(HUB_BASE_KEY).ok().flatten())
        .filter(|base| !base.trim().is_empty())
        .unwrap_or_else(|| registry().hub_base.clone())
}

/// Sets (or, with `None`, clears) the parent's own model host. The service worker adds its
/// origin to the page's `connect-src` from the next page load on.
pub async fn set_hub_base(base: Option<&str>) -> Result<(), String> {
    let storage = local_storage().ok_or("this browser keeps no settings")?;
    let caches = web_sys::window()
        .ok_or("no window")?
        .caches()
        .map_err(describe)?;
    let cache: web_sys::Cache = JsFuture::from(caches.open(SETTINGS_CACHE))
        .await
        .map_err(describe)?
        .unchecked_into();
    match base {
        Some(base) => {
            let url = web_sys::Url::new(base).map_err(|_| {
                format!("“{base}” is not a web address (it should start with https://)")
            })?;
            if url.protocol() != "https:"
                && url.hostname() != "127.0.0.1"
                && url.hostname() != "localhost"
            {
                return Err("The model host must use https://".into());
            }
            storage.set_item(HUB_BASE_KEY, base).map_err(describe)?;
            let response = Response::new_with_opt_str(Some(base)).map_err(describe)?;
            JsFuture::from(cache.put_with_str(SETTINGS_HUB_BASE, &response))
                .await
                .map_err(describe)?;
        }
        None => {
            storage.remove_item(HUB_BASE_KEY).map_err(describe)?;
            JsFuture::from(cache.delete_with_str(SETTINGS_HUB_BASE))
                .await
                .map_err(describe)?;
        }
    }
    Ok(())
}

/// Where a model stands on this device.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    Missing,
    /// Some bytes are here: a download to resume.
    Partial {
        bytes: u64,
    },
    Ready {
        bytes: u64,
    },
}

/// One file's progress, and the whole download's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// (path, bytes here, bytes in all) per file.
    pub files: Vec<(String, u64, u64)>,
    pub done: u64,
    pub total: u64,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    repo: String,
    revision: String,
    files: Vec<(String, u64)>,
}

pub async fn status(model: &ModelEntry) -> Result<Stored, String> {
    let Some(folder) = model_folder(model, false).await? else {
        return Ok(Stored::Missing);
    };
    let mut bytes = 0;
    for file in &model.files {
        if let Some(handle) = file_handle(&folder, &file.path, false).await? {
            bytes += file_size(&handle).await?;
        }
    }
    if file_handle(&folder, COMPLETE, false).await?.is_some() {
        Ok(Stored::Ready { bytes })
    } else if bytes > 0 {
        Ok(Stored::Partial { bytes })
    } else {
        Ok(Stored::Missing)
    }
}

pub async fn delete(model: &ModelEntry) -> Result<(), String> {
    let models = models_folder().await?;
    let options = FileSystemRemoveOptions::new();
    options.set_recursive(true);
    match JsFuture::from(models.remove_entry_with_options(&model.folder(), &options)).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(describe(error)),
    }
}

/// Whether a file is one of a model's small descriptions (configs, tokenizer), which come
/// first so that the engine can check the model before any weights are fetched.
fn is_small(path: &str) -> bool {
    path.ends_with(".json") || path.ends_with(".txt")
}

/// The model's whole size as the host gives it (one HEAD request a file): what the parent is
/// told before choosing to download.
pub async fn host_bytes(model: &ModelEntry) -> Result<u64, String> {
    let hub = hub_base();
    let mut total = 0;
    for file in &model.files {
        total += remote_size(&model.url(&hub, &file.path)).await?;
    }
    Ok(total)
}

/// Downloads (or resumes) every file of `model`, then checks them. `on_progress` is called as
/// bytes arrive. The small files come first; then `check` (the engine's look at them) must
/// pass before any weights are fetched — a model the engine cannot run is refused, and the
/// little that was fetched is removed again.
pub async fn download(
    model: &ModelEntry,
    mut on_progress: impl FnMut(&Progress),
    check: impl AsyncFnOnce() -> Result<(), EngineFailure>,
) -> Result<(), String> {
    let hub = hub_base();
    let folder = model_folder(model, true)
        .await?
        .expect("created when missing");
    // 1. Sizes, from the host itself: the registry's are only estimates.
    let mut progress = Progress::default();
    for file in &model.files {
        let total = remote_size(&model.url(&hub, &file.path)).await?;
        let here = match file_handle(&folder, &file.path, false).await? {
            Some(handle) => file_size(&handle).await?.min(total),
            None => 0,
        };
        progress.files.push((file.path.clone(), here, total));
    }
    progress.total = progress.files.iter().map(|file| file.2).sum();
    progress.done = progress.files.iter().map(|file| file.1).sum();
    on_progress(&progress);
    // 2. Room for what is still to come.
    check_quota(progress.total - progress.done).await?;
    // 3. Each file, from where it stopped: the small ones, the engine's check, the weights.
    let (small, large): (Vec<usize>, Vec<usize>) =
        (0..model.files.len()).partition(|&index| is_small(&model.files[index].path));
    let mut check = Some(check);
    for index in small.into_iter().chain(large) {
        if !is_small(&model.files[index].path)
            && let Some(check) = check.take()
        {
            match check().await {
                Ok(()) => {}
                // The engine could not look: what is downloaded stays, and resumes.
                Err(EngineFailure::Stopped(message)) => return Err(message),
                Err(EngineFailure::Failed(problem)) => {
                    delete(model).await?;
                    return Err(format!(
                        "{} cannot be used in this app yet: its files ask for something the app \
                         cannot do. Nothing large was downloaded. (Details: {problem})",
                        model.name
                    ));
                }
            }
        }
        let path = model.files[index].path.clone();
        let handle = file_handle(&folder, &path, true)
            .await?
            .expect("created when missing");
        download_file(
            &model.url(&hub, &path),
            &handle,
            index,
            &mut progress,
            &mut on_progress,
        )
        .await?;
    }
    finish(model, &folder, &progress).await
}

/// Checks every file, then writes the mark that says the model is whole.
async fn finish(
    model: &ModelEntry,
    folder: &FileSystemDirectoryHandle,
    progress: &Progress,
) -> Result<(), String> {
    let mut manifest = Manifest {
        repo: model.repo.clone(),
        revision: model.revision.clone(),
        files: Vec::new(),
    };
    for (path, _, total) in &progress.files {
        let handle = file_handle(folder, path, false)
            .await?
            .ok_or_else(|| format!("{path} vanished from the store"))?;
        check_file(path, &handle, *total).await?;
        manifest.files.push((path.clone(), *total));
    }
    let complete = file_handle(folder, COMPLETE, true).await?.expect("created");
    let writable = open_writable(&complete, false).await?;
    let text = serde_json::to_string(&manifest).expect("manifest serialises");
    JsFuture::from(writable.write_with_str(&text).map_err(describe)?)
        .await
        .map_err(describe)?;
    JsFuture::from(writable.close()).await.map_err(describe)?;
    Ok(())
}

/// Copies a model folder the parent picked (`<input webkitdirectory>`) into the store: the
/// registry's files, found by their path inside the picked folder, then the same checks as a
/// download. For parents without a connection who have the files from elsewhere.
pub async fn import(
    model: &ModelEntry,
    picked: Vec<web_sys::File>,
    mut on_progress: impl FnMut(&Progress),
    check: impl AsyncFnOnce() -> Result<(), EngineFailure>,
) -> Result<(), String> {
    // `webkitRelativePath` is `picked-folder/unet/config.json`: drop the first part.
    let relative = |file: &web_sys::File| {
        let path = Reflect::get(file, &"webkitRelativePath".into())
            .ok()
            .and_then(|path| path.as_string())
            .unwrap_or_else(|| file.name());
        path.split_once('/')
            .map_or(path.clone(), |(_, rest)| rest.to_owned())
    };
    let mut chosen = Vec::new();
    for entry in &model.files {
        let file = picked
            .iter()
            .find(|file| relative(file) == entry.path)
            .ok_or_else(|| {
                format!(
                    "The folder has no {}. Pick the folder that holds model_index.json of {}.",
                    entry.path, model.name
                )
            })?;
        chosen.push((entry.path.clone(), file.clone()));
    }
    let mut progress = Progress {
        files: chosen
            .iter()
            .map(|(path, file)| (path.clone(), 0, file.size() as u64))
            .collect(),
        done: 0,
        total: chosen.iter().map(|(_, file)| file.size() as u64).sum(),
    };
    check_quota(progress.total).await?;
    let folder = model_folder(model, true)
        .await?
        .expect("created when missing");
    for (index, (path, file)) in chosen.iter().enumerate() {
        let handle = file_handle(&folder, path, true).await?.expect("created");
        let writable = open_writable(&handle, false).await?;
        // The browser streams the file into the store; no copy passes through the wasm heap.
        JsFuture::from(writable.write_with_blob(file).map_err(describe)?)
            .await
            .map_err(describe)?;
        JsFuture::from(writable.close()).await.map_err(describe)?;
        let size = file.size() as u64;
        progress.files[index].1 = size;
        progress.done += size;
        on_progress(&progress);
    }
    match check().await {
        Ok(()) => {}
        // The engine could not look; the parent's folder is untouched, to import again.
        Err(EngineFailure::Stopped(message)) => {
            delete(model).await?;
            return Err(message);
        }
        Err(EngineFailure::Failed(problem)) => {
            delete(model).await?;
            return Err(format!(
                "{} cannot be used in this app yet: its files ask for something the app cannot \
                 do. The copy was removed again. (Details: {problem})",
                model.name
            ));
        }
    }
    finish(model, &folder, &progress).await
}

async fn download_file(
    url: &str,
    handle: &FileSystemFileHandle,
    index: usize,
    progress: &mut Progress,
    on_progress: &mut impl FnMut(&Progress),
) -> Result<(), String> {
    let (name, mut here, total) = progress.files[index].clone();
    if here == total && file_size(handle).await? == total {
        return Ok(());
    }
    let init = RequestInit::new();
    let headers = web_sys::Headers::new().map_err(describe)?;
    if here > 0 {
        headers
            .set("Range", &format!("bytes={here}-"))
            .map_err(describe)?;
    }
    init.set_headers(&headers);
    let response = fetch(url, &init).await?;
    if response.status() == 200 && here > 0 {
        // The host ignored the Range: start this file over.
        progress.done -= here;
        here = 0;
    } else if !response.ok() {
        return Err(format!(
            "{name}: the model host answered {}",
            response.status()
        ));
    }
    let mut writable = open_writable(handle, true).await?;
    JsFuture::from(writable.truncate_with_f64(here as f64).map_err(describe)?)
        .await
        .map_err(describe)?;
    JsFuture::from(writable.seek_with_f64(here as f64).map_err(describe)?)
        .await
        .map_err(describe)?;
    let body = response
        .body()
        .ok_or_else(|| format!("{name}: the download has no body"))?;
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    let mut since_commit = 0;
    loop {
        let chunk = match JsFuture::from(reader.read()).await {
            Ok(chunk) => chunk,
            Err(error) => {
                // Keep what arrived; the next attempt resumes from there.
                let _ = JsFuture::from(writable.close()).await;
                return Err(interrupted(&name, here, total, &describe(error)));
            }
        };
        if Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|done| done.as_bool())
            == Some(true)
        {
            break;
        }
        let bytes: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(describe)?
            .unchecked_into();
        JsFuture::from(writable.write_with_js_u8_array(&bytes).map_err(describe)?)
            .await
            .map_err(describe)?;
        let length = u64::from(bytes.length());
        here += length;
        since_commit += length;
        progress.files[index].1 = here;
        progress.done += length;
        on_progress(progress);
        if since_commit >= COMMIT_BYTES {
            JsFuture::from(writable.close()).await.map_err(describe)?;
            writable = open_writable(handle, true).await?;
            JsFuture::from(writable.seek_with_f64(here as f64).map_err(describe)?)
                .await
                .map_err(describe)?;
            since_commit = 0;
        }
    }
    JsFuture::from(writable.close()).await.map_err(describe)?;
    if here != total {
        return Err(interrupted(
            &name,
            here,
            total,
            "the connection closed early",
        ));
    }
    Ok(())
}

fn interrupted(name: &str, here: u64, total: u64, why: &str) -> String {
    format!(
        "The download of {name} stopped at {} of {} ({why}). What arrived is kept: choose Resume to continue.",
        format_bytes(here),
        format_bytes(total)
    )
}

/// The whole length, and for weights a header that describes exactly the file.
async fn check_file(path: &str, handle: &FileSystemFileHandle, total: u64) -> Result<(), String> {
    let file = file(handle).await?;
    let size = file.size() as u64;
    if size != total {
        return Err(format!(
            "{path} is {size} bytes but the host said {total}: download it again"
        ));
    }
    let damaged =
        |why: &str| format!("{path} looks damaged ({why}): delete the model and download it again");
    if path.ends_with(".safetensors") {
        let head = read_slice(&file, 0, 8.min(size)).await?;
        let header_length = u64::from_le_bytes(head.try_into().map_err(|_| damaged("too short"))?);
        if 8 + header_length > size || header_length > 100_000_000 {
            return Err(damaged("its header length is impossible"));
        }
        let header = read_slice(&file, 8, 8 + header_length).await?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header).map_err(|_| damaged("its header is not JSON"))?;
        let data_end = header
            .iter()
            .filter(|(name, _)| name.as_str() != "__metadata__")
            .filter_map(|(_, info)| info["data_offsets"][1].as_u64())
            .max()
            .unwrap_or(0);
        if 8 + header_length + data_end != size {
            return Err(damaged("its length does not match its header"));
        }
    } else if path.ends_with(".gguf") {
        // The magic and version here; the engine checks the whole header when the writer loads.
        let head = read_slice(&file, 0, 8.min(size)).await?;
        if head.len() < 8 || &head[..4] != b"GGUF" {
            return Err(damaged("it is not a GGUF file"));
        }
        let version = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if !(2..=3).contains(&version) {
            return Err(damaged("its GGUF version is not 2 or 3"));
        }
    } else if path.ends_with(".json") {
        let bytes = read_slice(&file, 0, size).await?;
        serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|_| damaged("not JSON"))?;
    }
    Ok(())
}

async fn check_quota(needed: u64) -> Result<(), String> {
    let storage = web_sys::window().ok_or("no window")?.navigator().storage();
    let estimate = JsFuture::from(storage.estimate().map_err(describe)?)
        .await
        .map_err(describe)?;
    let number = |name: &str| {
        Reflect::get(&estimate, &name.into())
            .ok()
            .and_then(|value| value.as_f64())
    };
    if let (Some(quota), Some(usage)) = (number("quota"), number("usage")) {
        let free = (quota - usage).max(0.0) as u64;
        if free < needed {
            return Err(format!(
                "This device has {} free for the app, but the model needs {} more. Free some space (or delete another model) and try again.",
                format_bytes(free),
                format_bytes(needed)
            ));
        }
    }
    Ok(())
}

async fn remote_size(url: &str) -> Result<u64, String> {
    let init = RequestInit::new();
    init.set_method("HEAD");
    let response = fetch(url, &init).await?;
    if !response.ok() {
        return Err(format!(
            "The model host does not have {url} (it answered {}).",
            response.status()
        ));
    }
    response
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|length| length.parse().ok())
        .ok_or_else(|| format!("The model host does not say how large {url} is."))
}

async fn fetch(url: &str, init: &RequestInit) -> Result<Response, String> {
    let window = web_sys::window().ok_or("no window")?;
    JsFuture::from(window.fetch_with_str_and_init(url, init))
        .await
        .map(JsCast::unchecked_into)
        .map_err(|error| {
            format!(
                "Could not reach the model host ({}). Check the internet connection, or import the model from a folder.",
                describe(error)
            )
        })
}

async fn models_folder() -> Result<FileSystemDirectoryHandle, String> {
    directory(&root().await?, protocol::store::MODELS_DIR, true)
        .await
        .map(|folder| folder.expect("created"))
}

async fn model_folder(
    model: &ModelEntry,
    create: bool,
) -> Result<Option<FileSystemDirectoryHandle>, String> {
    directory(&models_folder().await?, &model.folder(), create).await
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// "1.7 GB", "512 KB": sizes as a parent reads them.
pub fn format_bytes(bytes: u64) -> String {
    let bytes = bytes as f64;
    if bytes >= 1e9 {
        format!("{:.1} GB", bytes / 1e9)
    } else if bytes >= 1e6 {
        format!("{:.0} MB", bytes / 1e6)
    } else {
        format!("{:.0} KB", (bytes / 1e3).ceil())
    }
}
