//! Where a diffusers model folder's files come from: a local folder natively; in the browser, an
//! HTTP base URL, the model store (OPFS) or files a parent picked (see `web::files`).
//!
//! Reads are async because in the browser they are. Weights are never read whole: the loader asks
//! for a file's size, its safetensors header, then byte ranges of a few tensors at a time, so a
//! multi-gigabyte model streams through a small buffer.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// The largest configuration or tokenizer file read whole (CLIP's `tokenizer.json` is 2 MB).
pub const MAX_SMALL_FILE_BYTES: u64 = 64 << 20;

/// A configuration's own check: what it asks for is possible, and runs here.
pub trait Checked {
    fn check(&self) -> std::result::Result<(), String>;
}

/// Read access to the files of one diffusers folder, by relative path (`unet/config.json`).
// The futures are not `Send`: in the browser they hold JS promises, and nothing here needs threads.
#[allow(async_fn_in_trait)]
pub trait ModelFiles {
    /// The whole file, or `None` when the folder has no such file. For small files only.
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>>;

    /// The file's size in bytes, or `None` when the folder has no such file.
    async fn size(&self, relative: &str) -> Result<Option<u64>>;

    /// Bytes `range` of a file that exists; fewer bytes than asked for is an error.
    async fn read_range(&self, relative: &str, range: Range<u64>) -> Result<Vec<u8>>;

    /// How to name the file in an error message.
    fn display_path(&self, relative: &str) -> PathBuf;

    /// The file's bytes; a missing file is an error that says what it was needed for, and so is
    /// one too large to be what it should (a config, a vocabulary): it is not read.
    async fn require(&self, relative: &str, what: &'static str) -> Result<Vec<u8>> {
        if let Some(size) = self.size(relative).await?
            && size > MAX_SMALL_FILE_BYTES
        {
            return Err(EngineError::Config {
                path: self.display_path(relative),
                problem: format!(
                    "is {size} bytes, far too large for {what} (at most {MAX_SMALL_FILE_BYTES})"
                ),
            });
        }
        self.read(relative)
            .await?
            .ok_or_else(|| EngineError::MissingFile {
                path: self.display_path(relative),
                what,
            })
    }

    /// The file parsed as a configuration and [checked](Checked), before anything is built from it.
    async fn config<T: serde::de::DeserializeOwned + Checked>(
        &self,
        relative: &str,
        what: &'static str,
    ) -> Result<T> {
        let config: T = self.json(relative, what).await?;
        config.check().map_err(|problem| EngineError::Config {
            path: self.display_path(relative),
            problem,
        })?;
        Ok(config)
    }

    /// The file parsed as JSON.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        relative: &str,
        what: &'static str,
    ) -> Result<T> {
        let bytes = self.require(relative, what).await?;
        parse_json(&bytes, &self.display_path(relative), what)
    }
}

pub fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|error| EngineError::Json {
        path: path.to_owned(),
        what,
        message: error.to_string(),
    })
}

/// The error for a range read that came back short (a truncated download, a changed file).
pub fn short_read(path: PathBuf, range: &Range<u64>, got: usize) -> EngineError {
    EngineError::Weights {
        path,
        problem: format!(
            "is shorter than its header says: bytes {}..{} asked for, {got} read (an incomplete download?)",
            range.start, range.end
        ),
    }
}

/// A model folder on the local disk.
#[derive(Clone, Debug)]
pub struct Folder(pub PathBuf);

#[cfg(not(target_arch = "wasm32"))]
impl ModelFiles for Folder {
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        let path = self.0.join(relative);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EngineError::Io { path, source }),
        }
    }

    async fn size(&self, relative: &str) -> Result<Option<u64>> {
        let path = self.0.join(relative);
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => Ok(Some(metadata.len())),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EngineError::Io { path, source }),
        }
    }

    async fn read_range(&self, relative: &str, range: Range<u64>) -> Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.0.join(relative);
        let io = |source| EngineError::Io {
            path: path.clone(),
            source,
        };
        let mut file = std::fs::File::open(&path).map_err(io)?;
        file.seek(SeekFrom::Start(range.start)).map_err(io)?;
        let mut bytes = Vec::with_capacity((range.end - range.start) as usize);
        file.take(range.end - range.start)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(short_read(path, &range, bytes.len()));
        }
        Ok(bytes)
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

/// A model folder held in memory, keyed by relative path.
#[derive(Clone, Debug, Default)]
pub struct InMemory(pub HashMap<String, Vec<u8>>);

impl ModelFiles for InMemory {
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(relative).cloned())
    }

    async fn size(&self, relative: &str) -> Result<Option<u64>> {
        Ok(self.0.get(relative).map(|bytes| bytes.len() as u64))
    }

    async fn read_range(&self, relative: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let bytes = self.0.get(relative).map(Vec::as_slice).unwrap_or_default();
        let start = (range.start as usize).min(bytes.len());
        let end = (range.end as usize).min(bytes.len());
        if end - start != (range.end - range.start) as usize {
            return Err(short_read(self.display_path(relative), &range, end - start));
        }
        Ok(bytes[start..end].to_vec())
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        PathBuf::from(relative)
    }
}

/// A repository that holds one component at its root (TAESD's `config.json` and weights), seen
/// as the `{component}/` folder of a diffusers model.
#[derive(Clone, Debug)]
pub struct AsComponent<F> {
    pub files: F,
    pub component: &'static str,
}

impl<F: ModelFiles> AsComponent<F> {
    /// A fast decoder's repo (TAESD: `config.json` and weights at its root) as a model's `vae/`.
    pub fn vae(files: F) -> Self {
        AsComponent {
            files,
            component: "vae",
        }
    }

    fn inner<'a>(&self, relative: &'a str) -> &'a str {
        relative
            .strip_prefix(self.component)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(relative)
    }
}

impl<F: ModelFiles> ModelFiles for AsComponent<F> {
    async fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        self.files.read(self.inner(relative)).await
    }

    async fn size(&self, relative: &str) -> Result<Option<u64>> {
        self.files.size(self.inner(relative)).await
    }

    async fn read_range(&self, relative: &str, range: Range<u64>) -> Result<Vec<u8>> {
        self.files.read_range(self.inner(relative), range).await
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        self.files.display_path(self.inner(relative))
    }
}

/// Runs a future to completion on this thread (native callers: the CLI, tests, benchmarks).
#[cfg(not(target_arch = "wasm32"))]
pub use futures_lite::future::block_on;
