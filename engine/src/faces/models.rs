//! The detector and the descriptor together, ready on one device.

use std::path::Path;

use burn::tensor::Device;
use image::RgbImage;

use super::descriptor::{DESCRIPTOR_FILES, Descriptor};
use super::detector::{DETECTOR_FILES, Detector, Face};
use super::tfjs::TfjsWeights;
use crate::error::{EngineError, Result};

/// The detector and the descriptor, ready on one device.
pub struct FaceModels {
    detector: Detector,
    descriptor: Descriptor,
    device: Device,
}

impl FaceModels {
    /// From the two models' files: `(manifest, bin)` each, `folder` naming them in messages.
    pub fn from_files(
        detector: (&[u8], &[u8]),
        descriptor: (&[u8], &[u8]),
        folder: &Path,
        device: &Device,
    ) -> Result<FaceModels> {
        let mut weights =
            TfjsWeights::parse(detector.0, detector.1, &folder.join(DETECTOR_FILES[0]))?;
        let detector = Detector::load(&mut weights, device)?;
        let mut weights = TfjsWeights::parse(
            descriptor.0,
            descriptor.1,
            &folder.join(DESCRIPTOR_FILES[0]),
        )?;
        let descriptor = Descriptor::load(&mut weights, device)?;
        Ok(FaceModels {
            detector,
            descriptor,
            device: device.clone(),
        })
    }

    /// Reads both models from a folder holding face-api.js' files.
    pub fn from_folder(folder: &Path, device: &Device) -> Result<FaceModels> {
        let read = |name: &str| {
            let path = folder.join(name);
            std::fs::read(&path).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => EngineError::MissingFile {
                    path,
                    what: "face model",
                },
                _ => EngineError::Io { path, source },
            })
        };
        let detector = (read(DETECTOR_FILES[0])?, read(DETECTOR_FILES[1])?);
        let descriptor = (read(DESCRIPTOR_FILES[0])?, read(DESCRIPTOR_FILES[1])?);
        FaceModels::from_files(
            (&detector.0, &detector.1),
            (&descriptor.0, &descriptor.1),
            folder,
            device,
        )
    }

    /// Every face in `picture` with a confidence above [`MIN_CONFIDENCE`], most confident first,
    /// each with its descriptor.
    pub async fn faces(&self, picture: &RgbImage) -> Result<Vec<Face>> {
        let mut faces = Vec::new();
        for found in self.detector.detect(picture, &self.device).await? {
            if let Some(crop) = crop_clipped(picture, &found) {
                let descriptor = self.descriptor.describe(&crop, &self.device).await?;
                faces.push(Face {
                    descriptor,
                    ..found
                });
            }
        }
        Ok(faces)
    }

    /// Only the face boxes (no descriptors): enough to tell a parent a photo shows no face.
    pub async fn detect(&self, picture: &RgbImage) -> Result<Vec<Face>> {
        self.detector.detect(picture, &self.device).await
    }

    /// The descriptor of a face already cut out of its picture.
    pub async fn describe(&self, face: &RgbImage) -> Result<Vec<f32>> {
        self.descriptor.describe(face, &self.device).await
    }
}

/// The box cut out of the picture as face-api.js' `extractFaceTensors` does: clipped to the
/// picture, then each of x, y, width and height rounded down.
fn crop_clipped(picture: &RgbImage, face: &Face) -> Option<RgbImage> {
    let (width, height) = (f64::from(picture.width()), f64::from(picture.height()));
    let x = face.x.max(0.0);
    let y = face.y.max(0.0);
    let w = (face.x + face.width - x).min(width - x);
    let h = (face.y + face.height - y).min(height - y);
    let (x, y, w, h) = (x.floor(), y.floor(), w.floor(), h.floor());
    (w > 0.0 && h > 0.0).then(|| {
        image::imageops::crop_imm(picture, x as u32, y as u32, w as u32, h as u32).to_image()
    })
}
