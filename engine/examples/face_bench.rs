//! The likeness score's cost and how far it can be trusted: the time to find and describe the
//! faces of one picture, the models' sizes, and — on the real face photos in
//! `models/fixtures/faces` (public-domain portraits) — the score of the same face under crops,
//! a flip and light changes against the score between different faces.
//!
//! `cargo run --release -p engine --example face_bench -- [cpu|gpu] [RUNS]` (`cargo xtask bench
//! faces` runs it). Prints a table, then one JSON line.

use std::path::PathBuf;
use std::time::Instant;

use engine::device::ComputeBackend;
use engine::faces::{self, DESCRIPTOR_FILES, DETECTOR_FILES, FaceModels};
use engine::loaders::files::block_on;
use image::RgbImage;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn picture(name: &str) -> RgbImage {
    let path = root().join("models/fixtures/faces").join(name);
    image::open(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .to_rgb8()
}

/// The same photo as a parent might take it again: other crops, mirrored, darker, brighter.
fn variations(photo: &RgbImage) -> Vec<(&'static str, RgbImage)> {
    let (width, height) = photo.dimensions();
    let crop = |fraction: f64, dx: f64, dy: f64| {
        let (w, h) = (
            (width as f64 * fraction) as u32,
            (height as f64 * fraction) as u32,
        );
        let x = ((width - w) as f64 * dx) as u32;
        let y = ((height - h) as f64 * dy) as u32;
        image::imageops::crop_imm(photo, x, y, w, h).to_image()
    };
    let light = |factor: f32| {
        let mut lit = photo.clone();
        for pixel in lit.pixels_mut() {
            for channel in pixel.0.iter_mut() {
                *channel = (f32::from(*channel) * factor).round().clamp(0.0, 255.0) as u8;
            }
        }
        lit
    };
    vec![
        ("crop 80% centred", crop(0.8, 0.5, 0.5)),
        ("crop 70% top left", crop(0.7, 0.2, 0.2)),
        ("crop 70% bottom right", crop(0.7, 0.8, 0.8)),
        ("mirrored", image::imageops::flip_horizontal(photo)),
        ("darker ×0.6", light(0.6)),
        ("brighter ×1.4", light(1.4)),
        (
            "half size",
            image::imageops::resize(
                photo,
                width / 2,
                height / 2,
                image::imageops::FilterType::Triangle,
            ),
        ),
    ]
}

fn file_size(name: &str) -> u64 {
    std::fs::metadata(root().join("public/engine-worker-faces").join(name)).map_or(0, |m| m.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend: ComputeBackend = args.first().map_or(ComputeBackend::Cpu, |name| {
        name.parse().expect("cpu or gpu")
    });
    let runs: usize = args
        .get(1)
        .map_or(5, |runs| runs.parse().expect("RUNS is a number"));
    let (device, _) = backend
        .device_with(Some(engine::device::Precision::F32))
        .expect("the device");
    let folder = root().join("public/engine-worker-faces");
    let loading = Instant::now();
    let models = FaceModels::from_folder(&folder, &device)
        .unwrap_or_else(|error| panic!("{error} (`cargo xtask setup` copies the models there)"));
    let load_ms = loading.elapsed().as_secs_f64() * 1e3;

    // Time: one picture with one face, found and described; the first run compiles kernels.
    let astronaut = picture("astronaut.png");
    let mut times = Vec::new();
    for _ in 0..runs + 1 {
        let started = Instant::now();
        let found = faces_in(&models, &astronaut);
        assert_eq!(found.len(), 1);
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let first_ms = times.remove(0);
    times.sort_by(f64::total_cmp);
    let median_ms = times[times.len() / 2];
    let mut detect_times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        block_on(models.detect(&astronaut)).expect("detected");
        detect_times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    detect_times.sort_by(f64::total_cmp);
    let detect_ms = detect_times[detect_times.len() / 2];

    // Trust: each person's own variations against their photo, and against the other person.
    let people = [
        ("astronaut", picture("astronaut.png")),
        ("hopper", picture("hopper.png")),
    ];
    let reference: Vec<Vec<f32>> = people
        .iter()
        .map(|(_, photo)| faces_in(&models, photo).remove(0).descriptor)
        .collect();
    println!("| picture | faces | same person | other person |");
    println!("|---|---:|---:|---:|");
    let (mut same, mut other) = (Vec::new(), Vec::new());
    for (person, (name, photo)) in people.iter().enumerate() {
        let stranger = 1 - person;
        other.push(faces::similarity(&reference[person], &reference[stranger]));
        for (change, varied) in variations(photo) {
            let found = faces_in(&models, &varied);
            let to_self = faces::best_similarity(&found, &reference[person]);
            let to_other = faces::best_similarity(&found, &reference[stranger]);
            let show = |score: Option<f64>| score.map_or("no face".into(), |s| format!("{s:.3}"));
            println!(
                "| {name}, {change} | {} | {} | {} |",
                found.len(),
                show(to_self),
                show(to_other)
            );
            same.extend(to_self);
            other.extend(to_other);
        }
    }
    let min_same = same.iter().copied().fold(f64::INFINITY, f64::min);
    let max_other = other.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let size = |files: [&str; 2]| files.iter().map(|file| file_size(file)).sum::<u64>();
    println!(
        "{}",
        serde_json::json!({
            "backend": format!("{backend:?}"),
            "load_ms": load_ms,
            "first_score_ms": first_ms,
            "score_ms_median": median_ms,
            "detect_ms_median": detect_ms,
            "runs": runs,
            "detector_bytes": size(DETECTOR_FILES),
            "descriptor_bytes": size(DESCRIPTOR_FILES),
            "same_person_min": min_same,
            "same_person_count": same.len(),
            "other_person_max": max_other,
            "other_person_count": other.len(),
        })
    );
}

/// The faces in `picture`, waited for (natively a read never has to wait for long).
fn faces_in(models: &FaceModels, picture: &RgbImage) -> Vec<faces::Face> {
    block_on(models.faces(picture)).expect("the device answered")
}
