//! Faces in the worker: face-api.js' two models, served with the app under
//! `engine-worker-faces/` (cached by the service worker the first time, like the engine),
//! loaded once per device and kept.
//!
//! Scores run on the GPU the worker draws with when it is real hardware, and on the CPU backend
//! otherwise: on SwiftShader (a software adapter) three pictures took 9.1 s against 1.2 s on the
//! wasm CPU backend (docs/benchmarks.md, "Likeness score"). The photo check before
//! any model is loaded always uses the CPU, so it never fixes the GPU's float type first.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use burn::tensor::Device;
use image::RgbImage;
use protocol::{FaceReference, FoundFace, Likeness};

use super::files::{HttpFiles, read_source};
use super::state::State;
use crate::error::{EngineError, Result};
use crate::faces::{self, DESCRIPTOR_FILES, DETECTOR_FILES, FaceModels};
use crate::loaders::files::ModelFiles;
use crate::photos::decode;
use crate::pipelines::stable_diffusion::Generated;

/// Beside the worker's script, wherever the app is hosted.
const FOLDER: &str = "engine-worker-faces";

/// The models for scoring pictures drawn on `drawing_on`: that device when it is this worker's
/// hardware GPU, else burn's CPU backend.
pub(crate) async fn for_scoring(
    state: &Rc<RefCell<State>>,
    drawing_on: &Device,
) -> Result<Rc<FaceModels>> {
    let cpu = crate::device::ComputeBackend::Cpu.device();
    let hardware_gpu = matches!(&state.borrow().gpu, Some(Ok((_, info))) if !info.software);
    match hardware_gpu && *drawing_on != cpu {
        true => models(state, drawing_on).await,
        false => models(state, &cpu).await,
    }
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

/// How much a picture the pipeline drew looks like each reference.
pub(crate) async fn likeness(
    models: &FaceModels,
    drawn: &Generated,
    references: &[FaceReference],
) -> Result<Likeness> {
    let picture = RgbImage::from_raw(drawn.width as u32, drawn.height as u32, drawn.rgb.clone())
        .ok_or_else(|| EngineError::Usage("the picture's size does not match its pixels".into()))?;
    let found = models.faces(&picture).await?;
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
