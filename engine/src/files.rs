//! Where a diffusers model folder's files come from: a local folder natively, bytes already in
//! memory in the browser (fetched or imported by the app).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// Read access to the files of one diffusers folder, by relative path (`unet/config.json`).
pub trait ModelFiles {
    /// The file's bytes, or `None` when the folder has no such file.
    fn read(&self, relative: &str) -> Result<Option<Vec<u8>>>;

    /// How to name the file in an error message.
    fn display_path(&self, relative: &str) -> PathBuf;

    /// The file's bytes; a missing file is an error that says what it was needed for.
    fn require(&self, relative: &str, what: &'static str) -> Result<Vec<u8>> {
        self.read(relative)?
            .ok_or_else(|| EngineError::MissingFile {
                path: self.display_path(relative),
                what,
            })
    }

    /// The file parsed as JSON.
    fn json<T: serde::de::DeserializeOwned>(&self, relative: &str, what: &'static str) -> Result<T>
    where
        Self: Sized,
    {
        let bytes = self.require(relative, what)?;
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

/// A model folder on the local disk.
#[derive(Clone, Debug)]
pub struct Folder(pub PathBuf);

impl ModelFiles for Folder {
    fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        let path = self.0.join(relative);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EngineError::Io { path, source }),
        }
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

/// A model folder held in memory, keyed by relative path.
#[derive(Clone, Debug, Default)]
pub struct InMemory(pub HashMap<String, Vec<u8>>);

impl ModelFiles for InMemory {
    fn read(&self, relative: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(relative).cloned())
    }

    fn display_path(&self, relative: &str) -> PathBuf {
        PathBuf::from(relative)
    }
}
