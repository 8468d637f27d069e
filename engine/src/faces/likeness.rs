//! The likeness score: how close a picture's faces are to an avatar's reference (the mean
//! descriptor of its photos' faces). It ranks a page's variants; it verifies no one.

use image::RgbImage;

use super::descriptor::DESCRIPTOR_LEN;
use super::detector::Face;
use super::models::FaceModels;
use crate::error::Result;

/// Cosine similarity of two descriptors, in [-1, 1]: what the app ranks pictures by.
pub fn similarity(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let norms = norm(a) * norm(b);
    if norms > 0.0 { dot / norms } else { 0.0 }
}

/// Euclidean distance of two descriptors: dlib's own measure (below 0.6: "the same adult", on
/// adults' photos).
pub fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The mean of several descriptors (an avatar's reference: one per photo with a face).
pub fn mean_descriptor(descriptors: &[Vec<f32>]) -> Option<Vec<f32>> {
    let count = descriptors.len();
    (count > 0).then(|| {
        (0..DESCRIPTOR_LEN)
            .map(|i| {
                let sum: f64 = descriptors
                    .iter()
                    .map(|d| f64::from(d.get(i).copied().unwrap_or(0.0)))
                    .sum();
                (sum / count as f64) as f32
            })
            .collect()
    })
}

/// The best face's similarity to `reference` (`None`: no face).
pub fn best_similarity(faces: &[Face], reference: &[f32]) -> Option<f64> {
    faces
        .iter()
        .map(|face| similarity(&face.descriptor, reference))
        .max_by(f64::total_cmp)
}

/// An avatar's reference from its photos: the mean descriptor of each photo's most confident
/// face, and the photos (indices) where no face was found.
pub async fn reference_of(
    models: &FaceModels,
    photos: &[RgbImage],
) -> Result<(Option<Vec<f32>>, Vec<usize>)> {
    let mut descriptors = Vec::new();
    let mut without = Vec::new();
    for (index, photo) in photos.iter().enumerate() {
        match models.faces(photo).await?.into_iter().next() {
            Some(face) => descriptors.push(face.descriptor),
            None => without.push(index),
        }
    }
    Ok((mean_descriptor(&descriptors), without))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_and_the_mean_reference() {
        let a = vec![1.0f32; DESCRIPTOR_LEN];
        let b: Vec<f32> = (0..DESCRIPTOR_LEN)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!((similarity(&a, &a) - 1.0).abs() < 1e-12);
        assert!(similarity(&a, &b).abs() < 1e-12);
        assert_eq!(mean_descriptor(&[]), None);
        let mean = mean_descriptor(&[a.clone(), b]).expect("a mean");
        assert_eq!(mean[0], 1.0);
        assert_eq!(mean[1], 0.0);
        assert!((distance(&a, &a)).abs() < 1e-12);
    }
}
