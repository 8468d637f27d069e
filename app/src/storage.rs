//! The parent's things in the origin-private file system (OPFS): books and avatars as JSON with
//! their pictures, photos and avatar files beside them. Paths use `/`: `books/<id>/book.json`.
//! Nothing here leaves the device.

use js_sys::{Reflect, Uint8Array};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{FileSystemDirectoryHandle, FileSystemRemoveOptions};

use crate::opfs::{
    describe, directory, file, file_handle, is_not_found, is_quota_exceeded, open_writable, root,
};

pub const BOOKS_DIR: &str = "books";
pub const BOOK_FILE: &str = "book.json";
pub const AVATAR_INFO: &str = "avatar.json";
/// An avatar's latest training preview, beside its record.
pub const AVATAR_PREVIEW: &str = "preview.png";
/// The folder of an avatar's photos (`photo-0.jpg` …).
pub const AVATAR_PHOTOS: &str = "photos";
/// The parent's squares, by photo file name (`BTreeMap<String, PhotoCrop>` as JSON).
pub const AVATAR_CROPS: &str = "crops.json";

/// A folder by path; `None` when it does not exist and `create` is false.
async fn folder(path: &str, create: bool) -> Result<Option<FileSystemDirectoryHandle>, String> {
    let mut current = root().await?;
    for part in path.split('/').filter(|part| !part.is_empty()) {
        match directory(&current, part, create).await? {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// A file's bytes, `None` when it is not there.
pub async fn read(path: &str) -> Result<Option<Vec<u8>>, String> {
    let Some(handle) = file_handle(&root().await?, path, false).await? else {
        return Ok(None);
    };
    let file = file(&handle).await?;
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(describe)?;
    Ok(Some(Uint8Array::new(&buffer).to_vec()))
}

/// Writes a whole file (the browser swaps it in when the write closes: no half-written file).
pub async fn write(path: &str, bytes: &[u8]) -> Result<(), String> {
    let handle = file_handle(&root().await?, path, true)
        .await?
        .ok_or("could not create the file")?;
    let writable = open_writable(&handle, false).await?;
    let promise = writable
        .write_with_u8_array(bytes)
        .map_err(|error| full_or(error, "Could not save"))?;
    JsFuture::from(promise)
        .await
        .map_err(|error| full_or(error, "Could not save"))?;
    JsFuture::from(writable.close())
        .await
        .map_err(|error| full_or(error, "Could not save"))?;
    Ok(())
}

/// A storage error in words for a parent, after `doing`; a full disk says just that.
fn full_or(error: wasm_bindgen::JsValue, doing: &str) -> String {
    if is_quota_exceeded(&error) {
        describe(error)
    } else {
        format!("{doing} ({}).", describe(error))
    }
}

pub async fn read_json<T: DeserializeOwned>(path: &str) -> Result<Option<T>, String> {
    match read(path).await? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| format!("{path} is damaged ({error})")),
        None => Ok(None),
    }
}

pub async fn write_json<T: Serialize>(path: &str, value: &T) -> Result<(), String> {
    write(
        path,
        &serde_json::to_vec_pretty(value).expect("serialisable"),
    )
    .await
}

/// Names in a folder (none when it does not exist).
pub async fn list(path: &str) -> Result<Vec<String>, String> {
    let Some(folder) = folder(path, false).await? else {
        return Ok(Vec::new());
    };
    // `keys()` is an async iterator; web-sys has no binding for it yet.
    let keys = Reflect::get(&folder, &"keys".into())
        .and_then(|keys| keys.unchecked_into::<js_sys::Function>().call0(&folder))
        .map_err(describe)?;
    let next = Reflect::get(&keys, &"next".into())
        .map_err(describe)?
        .unchecked_into::<js_sys::Function>();
    let mut names = Vec::new();
    loop {
        let promise = next.call0(&keys).map_err(describe)?;
        let step = JsFuture::from(promise.unchecked_into::<js_sys::Promise>())
            .await
            .map_err(describe)?;
        if Reflect::get(&step, &"done".into())
            .map_err(describe)?
            .is_truthy()
        {
            break;
        }
        if let Some(name) = Reflect::get(&step, &"value".into())
            .map_err(describe)?
            .as_string()
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Removes a file or a folder with everything in it.
pub async fn remove(path: &str) -> Result<(), String> {
    let (parent, name) = match path.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", path),
    };
    let Some(parent) = folder(parent, false).await? else {
        return Ok(());
    };
    let options = FileSystemRemoveOptions::new();
    options.set_recursive(true);
    match JsFuture::from(parent.remove_entry_with_options(name, &options)).await {
        Ok(_) => Ok(()),
        Err(error) if is_not_found(&error) => Ok(()),
        Err(error) => Err(format!("Could not delete it ({}).", describe(error))),
    }
}

/// Bytes stored under `path` (a file or a folder, recursively).
pub async fn size(path: &str) -> Result<u64, String> {
    let mut total = 0;
    let mut pending = vec![path.to_owned()];
    while let Some(path) = pending.pop() {
        if let Some(handle) = file_handle(&root().await?, &path, false)
            .await
            .ok()
            .flatten()
        {
            total += file(&handle).await?.size() as u64;
            continue;
        }
        for name in list(&path).await? {
            pending.push(format!("{path}/{name}"));
        }
    }
    Ok(total)
}

/// A same-session URL for stored bytes (pictures in `<img>`), or `None`.
pub fn object_url(bytes: &[u8], mime: &str) -> Option<String> {
    let parts = js_sys::Array::of1(&Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).ok()?;
    web_sys::Url::create_object_url_with_blob(&blob).ok()
}

/// Saves `bytes` as a download named `name`.
pub fn download(bytes: &[u8], name: &str, mime: &str) -> Result<(), String> {
    let url = object_url(bytes, mime).ok_or("could not prepare the file")?;
    let document = web_sys::window()
        .and_then(|window| window.document())
        .ok_or("no document")?;
    let link: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(describe)?
        .unchecked_into();
    link.set_href(&url);
    link.set_download(name);
    link.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// Milliseconds since 1970.
pub fn now() -> f64 {
    js_sys::Date::now()
}

/// The files a `<input type=file>` change event carries.
pub fn chosen_files(event: &leptos::ev::Event) -> Vec<web_sys::File> {
    event
        .target()
        .and_then(|target| target.dyn_into::<web_sys::HtmlInputElement>().ok())
        .and_then(|input| input.files())
        .map(|list| {
            (0..list.length())
                .filter_map(|index| list.get(index))
                .collect()
        })
        .unwrap_or_default()
}

/// A chosen file's bytes.
pub async fn file_bytes(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(describe)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Asks the parent to confirm something that cannot be undone.
pub fn confirm(question: &str) -> bool {
    web_sys::window()
        .and_then(|window| window.confirm_with_message(question).ok())
        .unwrap_or(false)
}
