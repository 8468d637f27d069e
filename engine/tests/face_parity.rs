//! The face detector and descriptor against face-api.js on TensorFlow.js' CPU backend (the
//! goldens come from `models/faces/reference.mjs`, the weights from the npm package the app
//! serves: `cargo xtask setup` puts them in `public/engine-worker-faces/`).

mod common;

use std::path::PathBuf;

use engine::faces::{self, FaceModels};
use engine::loaders::files::block_on;
use image::RgbImage;

/// Box corners in pixels, the detector's confidence, and each descriptor value (descriptors
/// are about 0.1 in size): what f32 arithmetic in a different order moves them by.
const BOX_TOLERANCE: f64 = 1e-3;
const CONFIDENCE_TOLERANCE: f64 = 1e-5;
const DESCRIPTOR_TOLERANCE: f32 = 1e-5;

fn served_models() -> FaceModels {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../public/engine-worker-faces");
    FaceModels::from_folder(&folder, &common::device()).unwrap_or_else(|error| {
        panic!("{error} — `cargo xtask setup` copies face-api.js' models there")
    })
}

fn golden() -> serde_json::Value {
    let path = common::fixtures().join("faces/golden.json");
    serde_json::from_slice(&std::fs::read(&path).expect("faces/golden.json")).expect("JSON")
}

fn picture(file: &str) -> image::RgbImage {
    let path = common::fixtures().join("faces").join(file);
    image::open(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .to_rgb8()
}

fn floats(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

#[test]
fn faces_and_descriptors_match_face_api_js() {
    let models = served_models();
    let golden = golden();
    let mut worst = (0f64, 0f64, 0f32);
    for image in golden["images"].as_array().expect("images") {
        let file = image["file"].as_str().expect("file");
        let found = faces_in(&models, &picture(file));
        let expected = image["faces"].as_array().expect("faces");
        assert_eq!(found.len(), expected.len(), "{file}: faces found");
        for (face, reference) in found.iter().zip(expected) {
            let corners = floats(&reference["box"]);
            for (actual, expected) in [face.x, face.y, face.width, face.height]
                .iter()
                .zip(&corners)
            {
                let off = (actual - expected).abs();
                worst.0 = worst.0.max(off);
                assert!(
                    off <= BOX_TOLERANCE,
                    "{file}: box {actual} against {expected}"
                );
            }
            let off = (face.confidence - reference["score"].as_f64().expect("score")).abs();
            worst.1 = worst.1.max(off);
            assert!(
                off <= CONFIDENCE_TOLERANCE,
                "{file}: confidence off by {off}"
            );
            let descriptor = floats(&reference["descriptor"]);
            assert_eq!(face.descriptor.len(), faces::DESCRIPTOR_LEN);
            let off = face
                .descriptor
                .iter()
                .zip(&descriptor)
                .map(|(a, b)| (f64::from(*a) - b).abs() as f32)
                .fold(0f32, f32::max);
            worst.2 = worst.2.max(off);
            assert!(
                off <= DESCRIPTOR_TOLERANCE,
                "{file}: descriptor off by {off}"
            );
        }
    }
    eprintln!(
        "worst differences from face-api.js: box {:.2e} px, confidence {:.2e}, descriptor {:.2e}",
        worst.0, worst.1, worst.2
    );
}

#[test]
fn the_same_face_scores_higher_than_another_face() {
    let models = served_models();
    let astronaut = faces_in(&models, &picture("astronaut.png"));
    let hopper = faces_in(&models, &picture("hopper.png"));
    let both = faces_in(&models, &picture("two-faces.png"));
    assert_eq!((astronaut.len(), hopper.len(), both.len()), (1, 1, 2));
    let reference = &astronaut[0].descriptor;
    // In the two-faces picture the astronaut is on the left, smaller and resampled.
    let (left, right) = if both[0].x < both[1].x {
        (&both[0], &both[1])
    } else {
        (&both[1], &both[0])
    };
    let same = faces::similarity(reference, &left.descriptor);
    let other = faces::similarity(reference, &right.descriptor);
    let stranger = faces::similarity(reference, &hopper[0].descriptor);
    assert!(
        same > other && same > stranger,
        "same {same}, other {other}, stranger {stranger}"
    );
    assert!(
        faces::distance(reference, &left.descriptor) < 0.6,
        "dlib's same-person distance"
    );
}

#[test]
fn a_picture_without_a_face_has_none() {
    let models = served_models();
    assert!(faces_in(&models, &picture("no-face.png")).is_empty());
}

/// The faces in `picture`, waited for (natively a read never has to wait for long).
fn faces_in(models: &FaceModels, picture: &RgbImage) -> Vec<faces::Face> {
    block_on(models.faces(picture)).expect("the device answered")
}
