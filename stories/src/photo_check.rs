//! A first look at a photo before an avatar learns from it. The app draws the parent's crop
//! small ([`SAMPLE_SIDE`]²) and asks [`check_photo`]; what it finds is shown under the photo as
//! advice, not a refusal: these are rules of thumb, and the parent knows their photos.
//!
//! The rules, measured on the crop's brightness at [`SAMPLE_SIDE`]²:
//! - too small: the crop has fewer than half the training resolution's pixels across, so
//!   training would learn from an enlarged, soft picture;
//! - too dark or washed out: mean brightness below 40 or above 225 (of 255);
//! - no clear subject: the brightest and darkest parts (2nd and 98th percentiles) lie within 40
//!   of each other — a wall, a floor, a covered lens;
//! - blurry: even the strongest edges (98th percentile of the brightness step between
//!   neighbouring pixels) rise by less than 12% of that range per pixel. Sharp photos score
//!   0.3–0.8; a blur of 4–5% of the crop's side brings them under 0.12.

/// The side of the square the app samples the crop at.
pub const SAMPLE_SIDE: usize = 96;

const DARKEST_MEAN: f64 = 40.0;
const BRIGHTEST_MEAN: f64 = 225.0;
const LEAST_CONTRAST: f64 = 40.0;
const LEAST_SHARPNESS: f64 = 0.12;

/// Why a photo may teach the avatar little.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhotoProblem {
    TooSmall,
    TooDark,
    TooBright,
    NoClearSubject,
    Blurry,
}

impl PhotoProblem {
    /// What to tell the parent, kindly and with what to do.
    pub fn advice(self) -> &'static str {
        match self {
            PhotoProblem::TooSmall => {
                "This photo is small, so the avatar may come out soft. A larger photo, or a bigger square, works better."
            }
            PhotoProblem::TooDark => {
                "This photo is very dark. A photo taken in daylight shows your child's face better."
            }
            PhotoProblem::TooBright => {
                "This photo looks washed out. A photo out of direct sun or flash works better."
            }
            PhotoProblem::NoClearSubject => {
                "We can't make out a clear subject in this square. Move it onto your child's face, or choose another photo."
            }
            PhotoProblem::Blurry => {
                "This photo looks blurry. A sharp photo teaches the avatar more."
            }
        }
    }
}

/// Checks a crop: `rgba` is it drawn at `side`² (a canvas's `ImageData`), `crop_side` its side in
/// the photo's own pixels, `resolution` the side training will resize it to.
pub fn check_photo(
    rgba: &[u8],
    side: usize,
    crop_side: f64,
    resolution: usize,
) -> Option<PhotoProblem> {
    if crop_side < resolution as f64 / 2.0 {
        return Some(PhotoProblem::TooSmall);
    }
    let brightness: Vec<f64> = rgba
        .chunks_exact(4)
        .take(side * side)
        .map(|pixel| {
            0.299 * f64::from(pixel[0]) + 0.587 * f64::from(pixel[1]) + 0.114 * f64::from(pixel[2])
        })
        .collect();
    if brightness.len() < side * side || side < 2 {
        return Some(PhotoProblem::NoClearSubject);
    }
    let mean = brightness.iter().sum::<f64>() / brightness.len() as f64;
    if mean < DARKEST_MEAN {
        return Some(PhotoProblem::TooDark);
    }
    if mean > BRIGHTEST_MEAN {
        return Some(PhotoProblem::TooBright);
    }
    let contrast = percentile(brightness.clone(), 0.98) - percentile(brightness.clone(), 0.02);
    if contrast < LEAST_CONTRAST {
        return Some(PhotoProblem::NoClearSubject);
    }
    let at = |x: usize, y: usize| brightness[y * side + x];
    let mut steps = Vec::with_capacity((side - 1) * (side - 1));
    for y in 0..side - 1 {
        for x in 0..side - 1 {
            steps.push((at(x + 1, y) - at(x, y)).abs() + (at(x, y + 1) - at(x, y)).abs());
        }
    }
    let sharpness = percentile(steps, 0.98) / contrast;
    (sharpness < LEAST_SHARPNESS).then_some(PhotoProblem::Blurry)
}

fn percentile(mut values: Vec<f64>, fraction: f64) -> f64 {
    let index = ((values.len() - 1) as f64 * fraction).round() as usize;
    let (_, value, _) = values.select_nth_unstable_by(index, f64::total_cmp);
    *value
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIDE: usize = SAMPLE_SIDE;

    /// A toddler-ish drawing: a face disc with eyes on a sky background, `blur` box-blurred
    /// (radius in sample pixels).
    fn drawing(blur: usize) -> Vec<u8> {
        let mut grey = vec![0.0f64; SIDE * SIDE];
        for y in 0..SIDE {
            for x in 0..SIDE {
                let (dx, dy) = (x as f64 - 48.0, y as f64 - 50.0);
                let eye = ((x as f64 - 38.0).powi(2) + (y as f64 - 44.0).powi(2) < 9.0)
                    || ((x as f64 - 58.0).powi(2) + (y as f64 - 44.0).powi(2) < 9.0);
                grey[y * SIDE + x] = if eye {
                    30.0
                } else if dx * dx + dy * dy < 30.0 * 30.0 {
                    215.0
                } else {
                    120.0
                };
            }
        }
        for _ in 0..blur {
            grey = box_blur(&grey);
        }
        grey.iter()
            .flat_map(|&value| [value as u8, value as u8, value as u8, 255])
            .collect()
    }

    fn box_blur(grey: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; grey.len()];
        for y in 0..SIDE {
            for x in 0..SIDE {
                let mut sum = 0.0;
                let mut count = 0.0;
                for (ny, nx) in (y.saturating_sub(1)..=(y + 1).min(SIDE - 1)).flat_map(|ny| {
                    (x.saturating_sub(1)..=(x + 1).min(SIDE - 1)).map(move |nx| (ny, nx))
                }) {
                    sum += grey[ny * SIDE + nx];
                    count += 1.0;
                }
                out[y * SIDE + x] = sum / count;
            }
        }
        out
    }

    fn uniform(value: u8) -> Vec<u8> {
        (0..SIDE * SIDE)
            .flat_map(|index| {
                // A little sensor noise, as real blank photos have.
                let value = value.saturating_add((index * 7 % 5) as u8);
                [value, value, value, 255]
            })
            .collect()
    }

    #[test]
    fn a_clear_photo_passes() {
        assert_eq!(check_photo(&drawing(0), SIDE, 800.0, 512), None);
        // Slightly soft is still fine.
        assert_eq!(check_photo(&drawing(1), SIDE, 800.0, 512), None);
    }

    #[test]
    fn a_blurred_photo_is_blurry() {
        assert_eq!(
            check_photo(&drawing(30), SIDE, 800.0, 512),
            Some(PhotoProblem::Blurry)
        );
    }

    #[test]
    fn a_blank_wall_has_no_subject() {
        assert_eq!(
            check_photo(&uniform(128), SIDE, 800.0, 512),
            Some(PhotoProblem::NoClearSubject)
        );
    }

    #[test]
    fn dark_bright_and_small_photos_are_named() {
        assert_eq!(
            check_photo(&uniform(10), SIDE, 800.0, 512),
            Some(PhotoProblem::TooDark)
        );
        assert_eq!(
            check_photo(&uniform(245), SIDE, 800.0, 512),
            Some(PhotoProblem::TooBright)
        );
        assert_eq!(
            check_photo(&drawing(0), SIDE, 200.0, 512),
            Some(PhotoProblem::TooSmall)
        );
        assert_eq!(check_photo(&drawing(0), SIDE, 200.0, 256), None);
    }
}
