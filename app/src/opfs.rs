//! The origin-private file system (OPFS), where the app keeps everything: its root, folders and
//! files by path, reads and writes, and its errors in words a parent can act on. The model
//! store and the parent's things (`storage.rs`) are both built on it.

use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemCreateWritableOptions, FileSystemDirectoryHandle, FileSystemFileHandle,
    FileSystemGetDirectoryOptions, FileSystemGetFileOptions, FileSystemWritableFileStream,
};

/// The origin-private file system's root.
pub async fn root() -> Result<FileSystemDirectoryHandle, String> {
    let storage = web_sys::window().ok_or("no window")?.navigator().storage();
    let root: FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
        .await
        .map_err(|error| {
            format!(
                "This browser gives the app no private storage ({}).",
                describe(error)
            )
        })?
        .unchecked_into();
    Ok(root)
}

/// The folder `name` in `parent`; `None` when it does not exist and `create` is false.
pub async fn directory(
    parent: &FileSystemDirectoryHandle,
    name: &str,
    create: bool,
) -> Result<Option<FileSystemDirectoryHandle>, String> {
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(create);
    match JsFuture::from(parent.get_directory_handle_with_options(name, &options)).await {
        Ok(handle) => Ok(Some(handle.unchecked_into())),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(describe(error)),
    }
}

/// `relative` (with `/`s) under `folder`; `None` when it does not exist and `create` is false.
pub async fn file_handle(
    folder: &FileSystemDirectoryHandle,
    relative: &str,
    create: bool,
) -> Result<Option<FileSystemFileHandle>, String> {
    let mut parts: Vec<&str> = relative.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    let mut current = folder.clone();
    for part in parts {
        match directory(&current, part, create).await? {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    let options = FileSystemGetFileOptions::new();
    options.set_create(create);
    match JsFuture::from(current.get_file_handle_with_options(name, &options)).await {
        Ok(handle) => Ok(Some(handle.unchecked_into())),
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(describe(error)),
    }
}

/// The file behind `handle`, to read.
pub async fn file(handle: &FileSystemFileHandle) -> Result<web_sys::File, String> {
    JsFuture::from(handle.get_file())
        .await
        .map(JsCast::unchecked_into)
        .map_err(describe)
}

/// How many bytes the file behind `handle` holds.
pub async fn file_size(handle: &FileSystemFileHandle) -> Result<u64, String> {
    Ok(file(handle).await?.size() as u64)
}

/// Bytes `start..end` of `file`.
pub async fn read_slice(file: &web_sys::File, start: u64, end: u64) -> Result<Vec<u8>, String> {
    let blob = file
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(describe)?;
    let buffer = JsFuture::from(blob.array_buffer())
        .await
        .map_err(describe)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// A stream that writes `handle`, keeping what it holds when `keep`.
pub async fn open_writable(
    handle: &FileSystemFileHandle,
    keep: bool,
) -> Result<FileSystemWritableFileStream, String> {
    let options = FileSystemCreateWritableOptions::new();
    options.set_keep_existing_data(keep);
    JsFuture::from(handle.create_writable_with_options(&options))
        .await
        .map(JsCast::unchecked_into)
        .map_err(|error| {
            format!(
                "Could not write to the app's storage ({}).",
                describe(error)
            )
        })
}

/// Whether `error` is the browser saying a file or folder is not there.
pub fn is_not_found(error: &JsValue) -> bool {
    error
        .dyn_ref::<web_sys::DomException>()
        .is_some_and(|exception| exception.name() == "NotFoundError")
}

/// A browser error as a sentence for the parent.
pub fn describe(error: JsValue) -> String {
    // Any storage step may be the one that finds the disk full (creating a folder, opening a
    // file for writing, the write itself): each says it the same way.
    if is_quota_exceeded(&error) {
        return STORAGE_FULL.into();
    }
    if let Some(error) = error.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

const STORAGE_FULL: &str = "This device's storage for the app is full. Delete a model, an avatar or a book in Settings, then try again. Nothing you made was lost.";

/// Whether `error` is the browser saying the origin's storage quota is used up.
pub fn is_quota_exceeded(error: &JsValue) -> bool {
    error
        .dyn_ref::<web_sys::DomException>()
        .is_some_and(|exception| exception.name() == "QuotaExceededError")
}
