//! Faces in photos and pictures: where they are (face-api.js' tiny face detector, a
//! Tiny-YOLOv2 on depthwise-separable convolutions) and what they look like (its 128-d face
//! descriptor, dlib's face-recognition ResNet ported to tfjs). Both run on burn with the weights
//! face-api.js ships (MIT, tfjs layers format, 8-bit quantised); the preprocessing, box decoding
//! and non-maximum suppression follow face-api.js step by step, so the numbers match it
//! (`engine/tests/face_parity.rs` against `models/faces/reference.mjs`).
//!
//! What it is for: ranking a page's variants by how much the child's face in them resembles
//! the child's photos. Face recognisers are weak on toddlers and on illustrations; a score ranks
//! pictures, it does not verify anyone (ARCHITECTURE.md).
//!
//! The parts, each using only those before it: `tfjs` (the weight files) ← `input` (the
//! preprocessing) ← `detector`, `descriptor` ← `models` (both on one device) ← `likeness` (the
//! score and an avatar's reference).

mod descriptor;
mod detector;
mod input;
mod likeness;
mod models;
mod tfjs;

pub use descriptor::{DESCRIPTOR_FILES, DESCRIPTOR_LEN};
pub use detector::{DETECTOR_FILES, DETECTOR_INPUT, Face, MIN_CONFIDENCE};
pub use likeness::{best_similarity, distance, mean_descriptor, reference_of, similarity};
pub use models::FaceModels;
