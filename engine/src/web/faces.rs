//! Faces in the worker: face-api.js' two models, served with the app under
//! `engine-worker-faces/` (cached by the service worker the first time, like the engine),
//! loaded once per device and kept.
//!
//! The app scores on the CPU backend: about a second a picture in wasm, where SwiftShader's
//! WebGPU took minutes for the same three pictures (docs/benchmarks.md, "Likeness score") — and
//! on the CPU the score never competes with a model for GPU memory or fixes its precision.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use burn::tensor::Device;
use image::RgbImage;
use protocol::{FaceReference, FoundFace, Likeness};

use super::files::{HttpFiles, read_source};
use super::worker::State;
use crate::error::{EngineError, Result};
use crate::faces::{self, DESCRIPTOR_FILES, DETECTOR_FILES, FaceModels};
use crate::files::ModelFiles;
use crate::photos::decode;

/// Beside the worker's script, wherever the app is hosted.
const FOLDER: &str = "engine-worker-faces";

/// The models on burn's CPU backend: what training, drawing and the photo check use.
pub(crate) async fn on_cpu(state: &Rc<RefCell<State>>) -> Result<Rc<FaceModels>> {
    models(state, &crate::device::ComputeBackend::Cpu.device()).await
}

pub(crate) async fn models(state: &Rc<RefCell<State>>, device: &Device) -> Result<Rc<FaceModels>> {
    let key = format!("{device:?}");
    if let Some((_, models)) = state.borrow().faces.iter().find(|(k, _)| *k == key) {
        return Ok(models.clone());
    }
    let files = HttpFiles::new(FOLDER);
    let read = |name: &'static str| {
        let files = files.clone();
        async move {
            files
                .read(name)
                .await?
                .ok_or_else(|| EngineError::MissingFile {
                    path: Path::new(FOLDER).join(name),
                    what: "face model (served with the app)",
                })
        }
    };
    let detector = (
        read(DETECTOR_FILES[0]).await?,
        read(DETECTOR_FILES[1]).await?,
    );
    let descriptor = (
        read(DESCRIPTOR_FILES[0]).await?,
        read(DESCRIPTOR_FILES[1]).await?,
    );
    let models = Rc::new(FaceModels::from_files(
        (&detector.0, &detector.1),
        (&descriptor.0, &descriptor.1),
        Path::new(FOLDER),
        device,
    )?);
    state.borrow_mut().faces.push((key, models.clone()));
    Ok(models)
}

/// The faces in each picture (boxes as fractions of the picture), described if asked.
pub(crate) async fn find(
    state: &Rc<RefCell<State>>,
    device: &Device,
    pictures: &[String],
    describe: bool,
) -> Result<Vec<Vec<FoundFace>>> {
    let models = models(state, device).await?;
    let mut found = Vec::new();
    for source in pictures {
        let picture = decode(&read_source(source).await?, Path::new(source))?.to_rgb8();
        let (width, height) = (f64::from(picture.width()), f64::from(picture.height()));
        let faces = match describe {
            true => models.faces(&picture).await?,
            false => models.detect(&picture).await?,
        };
        found.push(
            faces
                .into_iter()
                .map(|face| FoundFace {
                    x: face.x / width,
                    y: face.y / height,
                    width: face.width / width,
                    height: face.height / height,
                    confidence: face.confidence,
                    descriptor: face.descriptor,
                })
                .collect(),
        );
    }
    Ok(found)
}

/// How much `picture` looks like each reference.
pub(crate) async fn likeness(
    models: &FaceModels,
    picture: &RgbImage,
    references: &[FaceReference],
) -> Result<Likeness> {
    let found = models.faces(picture).await?;
    let scores = if found.is_empty() {
        Vec::new()
    } else {
        references
            .iter()
            .filter_map(|reference| faces::best_similarity(&found, &reference.descriptor))
            .collect()
    };
    Ok(Likeness {
        faces: found.len(),
        scores,
    })
}
