//! [`ModelFiles`] in the browser: an HTTP base URL (the hub's `resolve` layout or any static
//! host), and a folder of the on-device model store (OPFS).

use std::ops::Range;
use std::path::PathBuf;

use protocol::ModelSource;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{FileSystemDirectoryHandle, FileSystemFileHandle, RequestInit, Response};

use super::{describe, scope};
use crate::error::{EngineError, Result};
use crate::loaders::files::{ModelFiles, short_read};

/// A diffusers folder at `{base}/{relative}`.
#[derive(Clone, Debug)]
pub struct HttpFiles {
    pub base: String,
}

impl HttpFiles {
    pub fn new(base: &str) -> Self {
        HttpFiles {
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// `relative` under the base; the base itself for `""` (a single file's URL).
    fn url(&self, relative: &str) -> String {
        if relative.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{relative}", self.base)
        }
    }

    fn network_error(&self, relative: &str, problem: String) -> EngineError {
        EngineError::Network {
            url: self.url(relative),
            problem,
        }
    }

    /// `None` for 404; an error for any other failure.
    async fn fetch(
        &self,
        relative: &str,
        method: &str,
        range: Option<&Range<u64>>,
    ) -> Result<Option<Response>> {
        let init = RequestInit::new();
        init.set_method(method);
        if let Some(range) = range {
            let headers = web_sys::Headers::new().expect("Headers");
            headers
                .set("Range", &format!("bytes={}-{}", range.start, range.end - 1))
                .expect("a valid header");
            init.set_headers(&headers);
        }
        let promise = scope().fetch_with_str_and_init(&self.url(relative), &init);
        let response: Response = JsFuture::from(promise)
            .await
            .map_err(|error| {
                self.network_error(
                    relative,
                    format!("could not be downloaded ({})", describe(&error)),
                )
            })?
            .unchecked_into();
        match response.status() {
            404 => Ok(None),
            200..=299 => Ok(Some(response)),
            status => Err(self.network_error(
                relative,
                format!("the server answered {status} {}", response.status_text()),
            )),
        }
    }

    async fn body(&self, relative: &str, response: Response) -> Result<Vec<u8>> {
        let buffer = response
            .array_buffer()
            .map_err(|error| self.network_error(relative, describe(&error)))?;
        let buffer = JsFuture::from(buffer).await.map_err(|error| {
            self.network_error(
                relative,
                format!("the download broke off ({})", describe(&error)),
            )
        })?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }
}

impl ModelFiles for HttpFiles {
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        match self.fetch(relative, "GET", None).await? {
            Some(response) => Ok(Some(self.body(relative, response).await?)),
            None => Ok(None),
        }
    }

    async fn size(&self, relative: &str) -> Result<Option<u64>> {
        let Some(response) = self.fetch(relative, "HEAD", None).await? else {
            return Ok(None);
        };
        let length = response
            .headers()
            .get("Content-Length")
            .ok()
            .flatten()
            .and_then(|length| length.parse().ok());
        length.map(Some).ok_or_else(|| {
            self.network_error(
                relative,
                "the server does not say how large the file is".into(),
            )
        })
    }

    async fn read_range(&self, relative: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let response = self
            .fetch(relative, "GET", Some(&range))
            .await?
            .ok_or_else(|| {
                self.network_error(relative, "has disappeared from the server".into())
            })?;
        let whole_file = response.status() == 200;
        let bytes = self.body(relative, response).await?;
        // A server without Range support sends the whole file: fine only if that is what we asked.
        if whole_file && range.start != 0 {
            return Err(self.network_error(
                relative,
                "the server does not support partial downloads (HTTP Range)".into(),
            ));
        }
        if bytes.len() as u64 != range.end - range.start {
            return Err(short_read(self.display_path(relative), &range, bytes.len()));
        }
        Ok(bytes)
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        PathBuf::from(self.url(relative))
    }
}

/// A model's files wherever a request names them: a URL or a folder of the on-device store.
#[derive(Clone, Debug)]
pub enum SourceFiles {
    Http(HttpFiles),
    Stored(StoredFiles),
}

impl SourceFiles {
    pub async fn open(source: &ModelSource) -> Result<Self> {
        Ok(match source {
            ModelSource::Url { base } => SourceFiles::Http(HttpFiles::new(base)),
            ModelSource::Stored { folder } => SourceFiles::Stored(StoredFiles::open(folder).await?),
        })
    }
}

impl ModelFiles for SourceFiles {
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        match self {
            SourceFiles::Http(files) => files.read(relative).await,
            SourceFiles::Stored(files) => files.read(relative).await,
        }
    }

    async fn size(&self, relative: &str) -> Result<Option<u64>> {
        match self {
            SourceFiles::Http(files) => files.size(relative).await,
            SourceFiles::Stored(files) => files.size(relative).await,
        }
    }

    async fn read_range(&self, relative: &str, range: Range<u64>) -> Result<Vec<u8>> {
        match self {
            SourceFiles::Http(files) => files.read_range(relative, range).await,
            SourceFiles::Stored(files) => files.read_range(relative, range).await,
        }
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        match self {
            SourceFiles::Http(files) => files.display_path(relative),
            SourceFiles::Stored(files) => files.display_path(relative),
        }
    }
}

/// A model folder in the on-device store (OPFS).
#[derive(Clone, Debug)]
pub struct StoredFiles {
    folder: FileSystemDirectoryHandle,
    name: String,
}

impl StoredFiles {
    /// Opens `models/{name}` under the origin-private file system's root.
    pub async fn open(name: &str) -> Result<Self> {
        let folder = store_folder(&[protocol::store::MODELS_DIR, name], false)
            .await?
            .ok_or_else(|| EngineError::Usage(format!("the model {name} is not on this device")))?;
        Ok(StoredFiles {
            folder,
            name: name.to_owned(),
        })
    }

    /// The file, or `None` when it (or a folder on its path) does not exist.
    async fn file(&self, relative: &str) -> Result<Option<web_sys::File>> {
        let mut parts: Vec<&str> = relative.split('/').collect();
        let file_name = parts.pop().unwrap_or_default();
        let mut folder = self.folder.clone();
        for part in parts {
            match JsFuture::from(folder.get_directory_handle(part)).await {
                Ok(handle) => folder = handle.unchecked_into(),
                Err(error) if is_not_found(&error) => return Ok(None),
                Err(error) => return Err(store_error(relative, &error)),
            }
        }
        let handle: FileSystemFileHandle =
            match JsFuture::from(folder.get_file_handle(file_name)).await {
                Ok(handle) => handle.unchecked_into(),
                Err(error) if is_not_found(&error) => return Ok(None),
                Err(error) => return Err(store_error(relative, &error)),
            };
        let file = JsFuture::from(handle.get_file())
            .await
            .map_err(|error| store_error(relative, &error))?;
        Ok(Some(file.unchecked_into()))
    }

    async fn bytes(&self, relative: &str, blob: &web_sys::Blob) -> Result<Vec<u8>> {
        let buffer = JsFuture::from(blob.array_buffer())
            .await
            .map_err(|error| store_error(relative, &error))?;
        Ok(js_sys::Uint8Array::new(&buffer).to_vec())
    }
}

impl ModelFiles for StoredFiles {
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        match self.file(relative).await? {
            Some(file) => Ok(Some(self.bytes(relative, &file).await?)),
            None => Ok(None),
        }
    }

    async fn size(&self, relative: &str) -> Result<Option<u64>> {
        Ok(self.file(relative).await?.map(|file| file.size() as u64))
    }

    async fn read_range(&self, relative: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let file = self
            .file(relative)
            .await?
            .ok_or_else(|| EngineError::MissingFile {
                path: self.display_path(relative),
                what: "a weights file",
            })?;
        let slice = file
            .slice_with_f64_and_f64(range.start as f64, range.end as f64)
            .map_err(|error| store_error(relative, &error))?;
        let bytes = self.bytes(relative, &slice).await?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(short_read(self.display_path(relative), &range, bytes.len()));
        }
        Ok(bytes)
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        PathBuf::from(format!("{}/{relative}", self.name))
    }
}

fn is_not_found(error: &JsValue) -> bool {
    error
        .dyn_ref::<web_sys::DomException>()
        .is_some_and(|exception| exception.name() == "NotFoundError")
}

fn store_error(path: &str, error: &JsValue) -> EngineError {
    EngineError::Network {
        url: format!("the model store: {path}"),
        problem: describe(error),
    }
}

/// The OPFS root.
async fn store_root() -> Result<FileSystemDirectoryHandle> {
    let storage = scope().navigator().storage();
    Ok(JsFuture::from(storage.get_directory())
        .await
        .map_err(|error| store_error("", &error))?
        .unchecked_into())
}

/// The folder `parts` under the OPFS root (created when `create`), or `None`.
async fn store_folder(parts: &[&str], create: bool) -> Result<Option<FileSystemDirectoryHandle>> {
    let mut folder = store_root().await?;
    for part in parts {
        let options = web_sys::FileSystemGetDirectoryOptions::new();
        options.set_create(create);
        match JsFuture::from(folder.get_directory_handle_with_options(part, &options)).await {
            Ok(handle) => folder = handle.unchecked_into(),
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(store_error(part, &error)),
        }
    }
    Ok(Some(folder))
}

/// The bytes of `{folder…}/{name}` in the store, or `None`.
pub async fn store_read(folder: &[&str], name: &str) -> Result<Option<Vec<u8>>> {
    let Some(folder) = store_folder(folder, false).await? else {
        return Ok(None);
    };
    let handle: FileSystemFileHandle = match JsFuture::from(folder.get_file_handle(name)).await {
        Ok(handle) => handle.unchecked_into(),
        Err(error) if is_not_found(&error) => return Ok(None),
        Err(error) => return Err(store_error(name, &error)),
    };
    let file: web_sys::File = JsFuture::from(handle.get_file())
        .await
        .map_err(|error| store_error(name, &error))?
        .unchecked_into();
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|error| store_error(name, &error))?;
    Ok(Some(js_sys::Uint8Array::new(&buffer).to_vec()))
}

/// Writes `bytes` to `{folder…}/{name}` in the store, replacing it whole (the browser swaps the
/// file in on close, so a tab closed mid-write leaves the previous version).
pub async fn store_write(folder: &[&str], name: &str, bytes: &[u8]) -> Result<()> {
    let folder = store_folder(folder, true).await?.expect("created");
    let options = web_sys::FileSystemGetFileOptions::new();
    options.set_create(true);
    let handle: FileSystemFileHandle =
        JsFuture::from(folder.get_file_handle_with_options(name, &options))
            .await
            .map_err(|error| store_error(name, &error))?
            .unchecked_into();
    let writable: web_sys::FileSystemWritableFileStream = JsFuture::from(handle.create_writable())
        .await
        .map_err(|error| store_error(name, &error))?
        .unchecked_into();
    let promise = writable
        .write_with_u8_array(bytes)
        .map_err(|error| store_error(name, &error))?;
    JsFuture::from(promise)
        .await
        .map_err(|error| store_error(name, &error))?;
    JsFuture::from(writable.close())
        .await
        .map_err(|error| store_error(name, &error))?;
    Ok(())
}

/// Removes `{folder…}/{name}` from the store if it is there.
pub async fn store_remove(folder: &[&str], name: &str) -> Result<()> {
    if let Some(folder) = store_folder(folder, false).await? {
        match JsFuture::from(folder.remove_entry(name)).await {
            Ok(_) => {}
            Err(error) if is_not_found(&error) => {}
            Err(error) => return Err(store_error(name, &error)),
        }
    }
    Ok(())
}

/// The bytes at `source`: a URL, or `opfs:{folder/…/name}` in the store.
pub async fn read_source(source: &str) -> Result<Vec<u8>> {
    let missing = || EngineError::Usage(format!("{source}: not found"));
    match source.strip_prefix("opfs:") {
        Some(path) => {
            let mut parts: Vec<&str> = path.split('/').filter(|part| !part.is_empty()).collect();
            let name = parts.pop().ok_or_else(missing)?;
            store_read(&parts, name).await?.ok_or_else(missing)
        }
        None => HttpFiles::new(source).read("").await?.ok_or_else(missing),
    }
}
