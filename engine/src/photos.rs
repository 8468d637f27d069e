//! A parent's photos, made ready for avatar training: decoded (JPEG, PNG, WebP) with the EXIF
//! orientation honoured, very large photos shrunk first, a square crop (the parent's, or a
//! centred default), resized to the training resolution, and as tensors in [-1, 1].

use std::io::Cursor;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{EngineError, Result};

/// Longer sides above this are shrunk before anything else (a 48-megapixel phone photo).
const MAX_SIDE: u32 = 2048;

/// The largest photo decoded at all: 100 megapixels (a 12000 × 8000 photo is 96), so a file whose
/// header claims 60000 × 60000 pixels is refused before its 10 GB are asked for.
const MAX_PIXELS: u64 = 100_000_000;

/// Resolutions a parent can pick: 512 (best), 384 and 256 (faster).
pub const RESOLUTIONS: [usize; 3] = [512, 384, 256];

/// A square in the photo, in its (oriented) pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

impl Crop {
    /// The default: the largest centred square, nudged up a little where the photo is tall
    /// (faces sit in the upper part of portraits).
    pub fn default_for(width: u32, height: u32) -> Crop {
        let side = width.min(height);
        let x = (width - side) / 2;
        let y = if height > width {
            ((height - side) / 3).min(height - side)
        } else {
            (height - side) / 2
        };
        Crop { x, y, side }
    }

    /// The parent's crop (fractions, from the app) in this picture's pixels; `None`: the default.
    pub fn chosen_or_default(chosen: Option<protocol::PhotoCrop>, picture: &DynamicImage) -> Crop {
        let (width, height) = (picture.width(), picture.height());
        match chosen {
            Some(crop) => {
                let (x, y, side) = crop.in_pixels(width, height);
                Crop { x, y, side }
            }
            None => Crop::default_for(width, height),
        }
    }
}

/// Decodes `bytes` (`name` is for messages), applies the EXIF orientation, shrinks it to at
/// most [`MAX_SIDE`].
pub fn decode(bytes: &[u8], name: &Path) -> Result<DynamicImage> {
    let not_a_picture = |problem: String| EngineError::Embedding {
        path: name.to_owned(),
        problem,
    };
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| not_a_picture(error.to_string()))?;
    if reader.format().is_none() {
        return Err(not_a_picture(
            "is not a picture this app can read (use JPEG, PNG or WebP)".into(),
        ));
    }
    if reader.format() == Some(image::ImageFormat::Jpeg)
        && let Some(problem) = jpeg_damage(bytes)
    {
        return Err(not_a_picture(problem));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|error| not_a_picture(format!("could not be read as a picture: {error}")))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(not_a_picture(format!(
            "is too large to read ({width} × {height} pixels; at most {} megapixels): save or \
             share a smaller copy of it",
            MAX_PIXELS / 1_000_000
        )));
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut picture = DynamicImage::from_decoder(decoder)
        .map_err(|error| not_a_picture(format!("could not be read as a picture: {error}")))?;
    picture.apply_orientation(orientation);
    if picture.width().max(picture.height()) > MAX_SIDE {
        picture = picture.resize(MAX_SIDE, MAX_SIDE, FilterType::Triangle);
    }
    Ok(picture)
}

/// What is wrong with a JPEG the decoder would still draw: it fills a picture whose scan data
/// runs out with grey rather than fail — a cut-off file, or a kilobyte whose header claims
/// 50 megapixels (seconds of decoding).
fn jpeg_damage(bytes: &[u8]) -> Option<String> {
    if !jpeg_is_whole(bytes) {
        return Some("is cut off (the end of the picture is missing): copy the photo again".into());
    }
    let frame = JpegFrame::read(bytes)?;
    ((bytes.len() as u64) < frame.least_entropy_bytes()).then(|| {
        format!(
            "is damaged (it holds too little to draw its {} × {} pixels): copy the photo again",
            frame.width, frame.height
        )
    })
}

/// Whether a JPEG's last scan is followed by its end marker. Scan data stuffs every 0xFF byte,
/// so an end marker after the last start-of-scan is the real end (a thumbnail's end marker, in
/// the EXIF block, comes before the main picture's scans).
fn jpeg_is_whole(bytes: &[u8]) -> bool {
    let marker = |code: u8| bytes.windows(2).rposition(move |pair| pair == [0xFF, code]);
    match (marker(0xDA), marker(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

/// A Huffman-coded JPEG's frame header: its size and each component's sampling factors.
struct JpegFrame {
    width: u32,
    height: u32,
    sampling: Vec<(u32, u32)>,
}

impl JpegFrame {
    /// The first frame header (baseline, extended or progressive Huffman) found by walking the
    /// marker segments; `None` for anything else (arithmetic or lossless coding, a damaged walk),
    /// which the decoder then judges on its own.
    fn read(bytes: &[u8]) -> Option<JpegFrame> {
        let mut at = 2; // after the start-of-image marker
        loop {
            while *bytes.get(at)? != 0xFF {
                at += 1;
            }
            while *bytes.get(at)? == 0xFF {
                at += 1; // fill bytes
            }
            let marker = *bytes.get(at)?;
            at += 1;
            if matches!(marker, 0x01 | 0xD0..=0xD8) {
                continue; // markers without a length
            }
            let length = usize::from(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]));
            let segment = bytes.get(at + 2..at + length.max(2))?;
            match marker {
                0xC0..=0xC2 => return JpegFrame::parse(segment),
                0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xDA | 0xD9 => return None,
                _ => at += length,
            }
        }
    }

    fn parse(segment: &[u8]) -> Option<JpegFrame> {
        let height = u32::from(u16::from_be_bytes([*segment.get(1)?, *segment.get(2)?]));
        let width = u32::from(u16::from_be_bytes([*segment.get(3)?, *segment.get(4)?]));
        let count = usize::from(*segment.get(5)?);
        let sampling = (0..count)
            .map(|index| {
                let factors = *segment.get(6 + 3 * index + 1)?;
                Some((
                    u32::from(factors >> 4).max(1),
                    u32::from(factors & 0x0F).max(1),
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(JpegFrame {
            width,
            height,
            sampling,
        })
    }

    /// The fewest bytes of scan data that can code this frame: every 8 × 8 block of every
    /// component costs at least one Huffman-coded bit (its DC difference), in baseline and
    /// progressive files alike.
    fn least_entropy_bytes(&self) -> u64 {
        let most = |pick: fn(&(u32, u32)) -> u32| self.sampling.iter().map(pick).max().unwrap_or(1);
        let (most_across, most_down) = (most(|factors| factors.0), most(|factors| factors.1));
        let blocks: u64 = self
            .sampling
            .iter()
            .map(|&(across, down)| {
                let columns = u64::from(self.width * across).div_ceil(u64::from(most_across));
                let rows = u64::from(self.height * down).div_ceil(u64::from(most_down));
                columns.div_ceil(8) * rows.div_ceil(8)
            })
            .sum();
        blocks / 8
    }
}

/// The crop, resized to `resolution`², as `[1, 3, r, r]` in [-1, 1]; `mirrored` flips it left to
/// right (augmentation).
pub fn to_tensor(
    picture: &DynamicImage,
    crop: Crop,
    resolution: usize,
    mirrored: bool,
    device: &Device,
) -> Tensor<4> {
    let side = crop
        .side
        .min(picture.width().saturating_sub(crop.x))
        .min(picture.height().saturating_sub(crop.y))
        .max(1);
    let mut square = picture
        .crop_imm(crop.x, crop.y, side, side)
        .resize_exact(resolution as u32, resolution as u32, FilterType::Lanczos3)
        .to_rgb8();
    if mirrored {
        image::imageops::flip_horizontal_in_place(&mut square);
    }
    let pixels = square.into_raw();
    // HWC bytes → CHW floats.
    let plane = resolution * resolution;
    let mut values = vec![0.0f32; 3 * plane];
    for (index, value) in pixels.iter().enumerate() {
        let (pixel, channel) = (index / 3, index % 3);
        values[channel * plane + pixel] = f32::from(*value) / 127.5 - 1.0;
    }
    Tensor::from_data(
        TensorData::new(values, [1, 3, resolution, resolution]),
        device,
    )
}

/// A PNG whose header says `width` × `height`, followed by a few bytes of (not enough) data:
/// what a hostile photo looks like (the tests' and the fuzzer's seeds).
pub fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8; 4], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let body: Vec<u8> = kind.iter().chain(data).copied().collect();
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    };
    let header: Vec<u8> = [width.to_be_bytes(), height.to_be_bytes()]
        .concat()
        .into_iter()
        .chain([8, 2, 0, 0, 0]) // 8-bit RGB, no interlacing
        .collect();
    chunk(b"IHDR", &header);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
    chunk(b"IEND", &[]);
    png
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_crop_is_the_largest_square_a_little_above_centre_on_portraits() {
        assert_eq!(
            Crop::default_for(400, 300),
            Crop {
                x: 50,
                y: 0,
                side: 300
            }
        );
        assert_eq!(
            Crop::default_for(300, 600),
            Crop {
                x: 0,
                y: 100,
                side: 300
            }
        );
    }

    #[test]
    fn the_parents_crop_picks_its_square() {
        // A 400×300 photo, red in its right-hand 100×100 corner square at (300, 200).
        let mut photo = image::RgbImage::from_pixel(400, 300, image::Rgb([0, 0, 255]));
        for (x, y, pixel) in photo.enumerate_pixels_mut() {
            if x >= 300 && y >= 200 {
                *pixel = image::Rgb([255, 0, 0]);
            }
        }
        let picture = DynamicImage::ImageRgb8(photo);
        let chosen = protocol::PhotoCrop {
            left: 0.75,
            top: 2.0 / 3.0,
            size: 1.0 / 3.0,
        };
        let crop = Crop::chosen_or_default(Some(chosen), &picture);
        assert_eq!(
            crop,
            Crop {
                x: 300,
                y: 200,
                side: 100
            }
        );
        let device = crate::device::ComputeBackend::Cpu.device();
        let pixels: Vec<f32> = to_tensor(&picture, crop, 8, false, &device)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let (red, blue) = (&pixels[..64], &pixels[128..]);
        assert!(red.iter().all(|&value| value > 0.99), "{red:?}");
        assert!(blue.iter().all(|&value| value < -0.99), "{blue:?}");
        assert_eq!(
            Crop::chosen_or_default(None, &picture),
            Crop::default_for(400, 300)
        );
    }

    #[test]
    fn a_photo_claiming_60000_by_60000_pixels_is_refused_before_decoding() {
        let error =
            decode(&png_header_claiming(60_000, 60_000), Path::new("huge.png")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("huge.png"), "{message}");
        assert!(
            message.contains("too large to read (60000 × 60000 pixels"),
            "{message}"
        );
        // The same header with a small size gets as far as its (missing) pixels.
        let error = decode(&png_header_claiming(8, 8), Path::new("small.png")).unwrap_err();
        assert!(
            error.to_string().contains("could not be read as a picture"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_or_cut_off_photo_is_named() {
        let error = decode(b"", Path::new("empty.jpg")).unwrap_err();
        assert!(error.to_string().contains("empty.jpg"), "{error}");
        let mut png = png_header_claiming(8, 8);
        png.truncate(20);
        let error = decode(&png, Path::new("cut.png")).unwrap_err();
        assert!(error.to_string().contains("cut.png"), "{error}");
    }

    #[test]
    fn text_is_not_a_picture() {
        let error = decode(b"hello, not a photo", Path::new("notes.txt")).unwrap_err();
        assert!(error.to_string().contains("notes.txt"), "{error}");
        assert!(error.to_string().contains("JPEG, PNG or WebP"), "{error}");
    }
}
