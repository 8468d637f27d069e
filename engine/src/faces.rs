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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::activation::{leaky_relu, relu};
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Tensor, TensorData};
use image::RgbImage;
use serde::Deserialize;

use crate::error::{EngineError, Result};
use crate::pipeline::read;

/// The detector's input side (face-api.js' default; a multiple of 32).
pub const DETECTOR_INPUT: usize = 416;
/// Detections below this confidence are dropped (face-api.js' default).
pub const MIN_CONFIDENCE: f64 = 0.5;
const IOU_THRESHOLD: f64 = 0.4;
const DETECTOR_MEAN_RGB: [f32; 3] = [117.001, 114.697, 97.404];
const ANCHORS: [(f64, f64); 5] = [
    (1.603231, 2.094468),
    (6.041143, 7.080126),
    (2.882459, 3.518061),
    (4.266906, 5.178857),
    (9.041765, 10.66308),
];
/// The descriptor's input side and mean colour.
const DESCRIPTOR_INPUT: usize = 150;
const DESCRIPTOR_MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// Length of a face descriptor.
pub const DESCRIPTOR_LEN: usize = 128;

/// The files each model is made of, as face-api.js names them.
pub const DETECTOR_FILES: [&str; 2] = [
    "tiny_face_detector_model-weights_manifest.json",
    "tiny_face_detector_model.bin",
];
pub const DESCRIPTOR_FILES: [&str; 2] = [
    "face_recognition_model-weights_manifest.json",
    "face_recognition_model.bin",
];

/// A face found in a picture: its box in the picture's pixels (it may reach past the edges),
/// the detector's confidence and the face's descriptor.
#[derive(Clone, Debug, PartialEq)]
pub struct Face {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub confidence: f64,
    pub descriptor: Vec<f32>,
}

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

// ---- preprocessing, exactly as face-api.js' NetInput.toBatchTensor ----

/// The picture as `[height, width, 3]` floats, padded with black to a square — at the bottom or
/// right (`centred` false), or split around it (`centred`: the larger half after) — and resized
/// to `side`² with TensorFlow's bilinear resize (no corner alignment, no half-pixel centres),
/// then `(value − mean) / 255`, as `[1, 3, side, side]`.
fn to_input(
    picture: &RgbImage,
    side: usize,
    centred: bool,
    mean: [f32; 3],
    device: &Device,
) -> Tensor<4> {
    let (width, height) = (picture.width() as usize, picture.height() as usize);
    let square = width.max(height);
    let difference = square - width.min(height);
    let after = if centred {
        (difference as f64 * 0.5).round() as usize
    } else {
        difference
    };
    let before = difference - after;
    let (left, top) = if height > width {
        (before, 0)
    } else {
        (0, before)
    };
    let padded_pixel = |row: usize, col: usize, channel: usize| -> f64 {
        let (r, c) = (row.wrapping_sub(top), col.wrapping_sub(left));
        if r < height && c < width {
            f64::from(picture.get_pixel(c as u32, r as u32)[channel])
        } else {
            0.0
        }
    };
    let ratio = square as f64 / side as f64;
    let mut values = vec![0f32; 3 * side * side];
    for row in 0..side {
        let source_row = ratio * row as f64;
        let top_row = source_row.floor().max(0.0) as usize;
        let row_fraction = source_row - top_row as f64;
        let bottom_row = (source_row.ceil() as usize).min(square - 1);
        for col in 0..side {
            let source_col = ratio * col as f64;
            let left_col = source_col.floor().max(0.0) as usize;
            let col_fraction = source_col - left_col as f64;
            let right_col = (source_col.ceil() as usize).min(square - 1);
            for channel in 0..3 {
                let top_left = padded_pixel(top_row, left_col, channel);
                let top_right = padded_pixel(top_row, right_col, channel);
                let bottom_left = padded_pixel(bottom_row, left_col, channel);
                let bottom_right = padded_pixel(bottom_row, right_col, channel);
                let upper = top_left + (top_right - top_left) * col_fraction;
                let lower = bottom_left + (bottom_right - bottom_left) * col_fraction;
                // tfjs stores the resized picture as f32, then normalises in f32.
                let resized = (upper + (lower - upper) * row_fraction) as f32;
                values[(channel * side + row) * side + col] = (resized - mean[channel]) / 255.0;
            }
        }
    }
    Tensor::from_data(
        TensorData::new(values, [1, 3, side, side]),
        (device, DType::F32),
    )
}

// ---- the detector ----

struct Separable {
    depthwise: Tensor<4>,
    pointwise: Tensor<4>,
    bias: Tensor<1>,
}

struct Detector {
    conv0: (Tensor<4>, Tensor<1>),
    separable: Vec<Separable>,
    conv8: (Tensor<4>, Tensor<1>),
}

impl Detector {
    fn load(weights: &mut TfjsWeights, device: &Device) -> Result<Detector> {
        let conv0 = (
            weights.filters("conv0/filters", Some((3, 3)), device)?,
            weights.vector("conv0/bias", device)?,
        );
        let separable = (1..=5)
            .map(|index| {
                Ok(Separable {
                    depthwise: weights
                        .depthwise(&format!("conv{index}/depthwise_filter"), device)?,
                    pointwise: weights.filters(
                        &format!("conv{index}/pointwise_filter"),
                        Some((1, 1)),
                        device,
                    )?,
                    bias: weights.vector(&format!("conv{index}/bias"), device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let conv8 = (
            weights.filters("conv8/filters", Some((1, 1)), device)?,
            weights.vector("conv8/bias", device)?,
        );
        weights.all_used()?;
        let channels = |t: &Tensor<4>| t.dims();
        let [outputs, ..] = channels(&conv8.0);
        if outputs != ANCHORS.len() * 5 {
            return Err(weights.problem(format!(
                "the detector's last layer has {outputs} outputs, not {} (5 boxes × 5 numbers)",
                ANCHORS.len() * 5
            )));
        }
        Ok(Detector {
            conv0,
            separable,
            conv8,
        })
    }

    /// The raw grid: `[1, 25, cells, cells]` (5 anchors × x, y, w, h, confidence).
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let valid = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let mut x = leaky(conv2d(
            input,
            self.conv0.0.clone(),
            Some(self.conv0.1.clone()),
            valid.clone(),
        ));
        for layer in &self.separable {
            x = max_pool_same(x, 2);
            let channels = x.dims()[1];
            let depthwise = ConvOptions::new([1, 1], [1, 1], [1, 1], channels);
            x = conv2d(x, layer.depthwise.clone(), None, depthwise);
            x = leaky(conv2d(
                x,
                layer.pointwise.clone(),
                Some(layer.bias.clone()),
                valid.clone(),
            ));
        }
        x = max_pool_same(x, 1);
        conv2d(x, self.conv8.0.clone(), Some(self.conv8.1.clone()), valid)
    }

    async fn detect(&self, picture: &RgbImage, device: &Device) -> Result<Vec<Face>> {
        let input = to_input(picture, DETECTOR_INPUT, false, DETECTOR_MEAN_RGB, device);
        let grid = self.forward(input);
        let [_, _, cells, _] = grid.dims();
        let values = read(grid).await?;
        let (width, height) = (f64::from(picture.width()), f64::from(picture.height()));
        // The picture was padded to a square at the bottom or right: boxes are relative to that
        // square, so stretch them back to the picture (face-api.js' correction factors).
        let scale = DETECTOR_INPUT as f64 / width.max(height);
        let reshaped = ((width * scale).round(), (height * scale).round());
        let correction = (
            DETECTOR_INPUT as f64 / reshaped.0,
            DETECTOR_INPUT as f64 / reshaped.1,
        );
        let at = |anchor: usize, k: usize, row: usize, col: usize| {
            f64::from(values[((anchor * 5 + k) * cells + row) * cells + col])
        };
        let mut candidates = Vec::new();
        for row in 0..cells {
            for col in 0..cells {
                for (anchor, (anchor_w, anchor_h)) in ANCHORS.iter().enumerate() {
                    let confidence = sigmoid(at(anchor, 4, row, col));
                    if confidence <= MIN_CONFIDENCE {
                        continue;
                    }
                    let cells = cells as f64;
                    let centre_x =
                        (col as f64 + sigmoid(at(anchor, 0, row, col))) / cells * correction.0;
                    let centre_y =
                        (row as f64 + sigmoid(at(anchor, 1, row, col))) / cells * correction.1;
                    let box_w = at(anchor, 2, row, col).exp() * anchor_w / cells * correction.0;
                    let box_h = at(anchor, 3, row, col).exp() * anchor_h / cells * correction.1;
                    candidates.push(Face {
                        x: centre_x - box_w / 2.0,
                        y: centre_y - box_h / 2.0,
                        width: box_w,
                        height: box_h,
                        confidence,
                        descriptor: Vec::new(),
                    });
                }
            }
        }
        Ok(non_max_suppression(candidates)
            .into_iter()
            .map(|face| Face {
                x: face.x * width,
                y: face.y * height,
                width: face.width * width,
                height: face.height * height,
                ..face
            })
            .collect())
    }
}

/// face-api.js' greedy suppression: the most confident box wins, boxes overlapping it by more
/// than [`IOU_THRESHOLD`] go.
fn non_max_suppression(mut candidates: Vec<Face>) -> Vec<Face> {
    candidates.sort_by(|a, b| a.confidence.total_cmp(&b.confidence));
    let mut kept: Vec<Face> = Vec::new();
    while let Some(best) = candidates.pop() {
        candidates.retain(|other| intersection_over_union(&best, other) <= IOU_THRESHOLD);
        kept.push(best);
    }
    kept
}

fn intersection_over_union(a: &Face, b: &Face) -> f64 {
    let width = ((a.x + a.width).min(b.x + b.width) - a.x.max(b.x)).max(0.0);
    let height = ((a.y + a.height).min(b.y + b.height) - a.y.max(b.y)).max(0.0);
    let intersection = width * height;
    intersection / (a.width * a.height + b.width * b.height - intersection)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn leaky(x: Tensor<4>) -> Tensor<4> {
    leaky_relu(x, 0.1)
}

/// TensorFlow's 2×2 max pool with `same` padding: the missing row and column, where there is
/// one, are at the end.
fn max_pool_same(x: Tensor<4>, stride: usize) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let extra = |size: usize| {
        let outputs = size.div_ceil(stride);
        ((outputs - 1) * stride + 2).saturating_sub(size)
    };
    let options = MaxPoolOptions::new([2, 2])
        .with_stride([stride, stride])
        .with_padding_pairs([(0, extra(height)), (0, extra(width))]);
    max_pool2d(x, options)
}

// ---- the descriptor ----

struct ConvScale {
    filters: Tensor<4>,
    bias: Tensor<1>,
    scale: Tensor<1>,
    offset: Tensor<1>,
}

impl ConvScale {
    fn load(weights: &mut TfjsWeights, prefix: &str, device: &Device) -> Result<ConvScale> {
        Ok(ConvScale {
            filters: weights.filters(&format!("{prefix}/conv/filters"), None, device)?,
            bias: weights.vector(&format!("{prefix}/conv/bias"), device)?,
            scale: weights.vector(&format!("{prefix}/scale/weights"), device)?,
            offset: weights.vector(&format!("{prefix}/scale/biases"), device)?,
        })
    }

    /// Convolution (`stride` 2: no padding, TensorFlow's `valid`; 1: `same`), bias, then the
    /// folded batch norm (`· scale + offset`).
    fn forward(&self, x: Tensor<4>, stride: usize) -> Tensor<4> {
        let [_, _, kernel, _] = self.filters.dims();
        let padding = if stride == 1 { kernel / 2 } else { 0 };
        let options = ConvOptions::new([stride, stride], [padding, padding], [1, 1], 1);
        let channels = self.scale.dims()[0];
        let x = conv2d(x, self.filters.clone(), Some(self.bias.clone()), options);
        x * self.scale.clone().reshape([1, channels, 1, 1])
            + self.offset.clone().reshape([1, channels, 1, 1])
    }
}

struct Residual {
    first: ConvScale,
    second: ConvScale,
    down: bool,
}

impl Residual {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.down {
            let out = relu(self.first.forward(x.clone(), 1));
            return relu(self.second.forward(out, 1) + x);
        }
        let mut out = relu(self.first.forward(x.clone(), 2));
        out = self.second.forward(out, 1);
        let mut shortcut = avg_pool2d(x, AvgPoolOptions::new([2, 2]).with_stride([2, 2]));
        let [batch, channels, height, width] = out.dims();
        let [_, pooled_channels, pooled_height, pooled_width] = shortcut.dims();
        // face-api.js pads the convolution's output with a zero row and column where the
        // pooled shortcut is one larger, and the shortcut with zero channels.
        if (pooled_height, pooled_width) != (height, width) {
            out = out.pad(
                (0, pooled_width - width, 0, pooled_height - height),
                burn::tensor::ops::PadMode::Constant(0.0),
            );
        }
        if pooled_channels != channels {
            let zeros = Tensor::zeros(
                [
                    batch,
                    channels - pooled_channels,
                    pooled_height,
                    pooled_width,
                ],
                (&shortcut.device(), DType::F32),
            );
            shortcut = Tensor::cat(vec![shortcut, zeros], 1);
        }
        relu(shortcut + out)
    }
}

struct Descriptor {
    stem: ConvScale,
    blocks: Vec<Residual>,
    fully_connected: Tensor<2>,
}

/// The descriptor's residual blocks in order: (name, halves the size).
const DESCRIPTOR_BLOCKS: [(&str, bool); 14] = [
    ("conv32_1", false),
    ("conv32_2", false),
    ("conv32_3", false),
    ("conv64_down", true),
    ("conv64_1", false),
    ("conv64_2", false),
    ("conv64_3", false),
    ("conv128_down", true),
    ("conv128_1", false),
    ("conv128_2", false),
    ("conv256_down", true),
    ("conv256_1", false),
    ("conv256_2", false),
    ("conv256_down_out", true),
];

impl Descriptor {
    fn load(weights: &mut TfjsWeights, device: &Device) -> Result<Descriptor> {
        let stem = ConvScale::load(weights, "conv32_down", device)?;
        let blocks = DESCRIPTOR_BLOCKS
            .iter()
            .map(|(name, down)| {
                Ok(Residual {
                    first: ConvScale::load(weights, &format!("{name}/conv1"), device)?,
                    second: ConvScale::load(weights, &format!("{name}/conv2"), device)?,
                    down: *down,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (shape, values) = weights.take("fc", 2)?;
        if shape[1] != DESCRIPTOR_LEN {
            return Err(weights.problem(format!(
                "`fc` gives {} numbers, not {DESCRIPTOR_LEN}",
                shape[1]
            )));
        }
        let fully_connected = Tensor::from_data(
            TensorData::new(values, [shape[0], shape[1]]),
            (device, DType::F32),
        );
        weights.all_used()?;
        Ok(Descriptor {
            stem,
            blocks,
            fully_connected,
        })
    }

    async fn describe(&self, face: &RgbImage, device: &Device) -> Result<Vec<f32>> {
        let input = to_input(face, DESCRIPTOR_INPUT, true, DESCRIPTOR_MEAN_RGB, device);
        let mut x = relu(self.stem.forward(input, 2));
        x = max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        read(pooled.matmul(self.fully_connected.clone())).await
    }
}

// ---- tfjs weights ----

#[derive(Deserialize)]
struct WeightGroup {
    weights: Vec<WeightEntry>,
}

#[derive(Deserialize)]
struct WeightEntry {
    name: String,
    shape: Vec<usize>,
    dtype: String,
    #[serde(default)]
    quantization: Option<Quantization>,
}

#[derive(Deserialize)]
struct Quantization {
    dtype: String,
    #[serde(default)]
    scale: f64,
    #[serde(default)]
    min: f64,
}

/// A tfjs layers-format model's weights (a JSON manifest and the `.bin` it describes), read
/// into floats by name.
struct TfjsWeights {
    path: PathBuf,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// No face model comes near this many numbers; a manifest asking for more is refused before
/// anything is allocated.
const MAX_VALUES: usize = 1 << 26;

impl TfjsWeights {
    fn parse(manifest: &[u8], bin: &[u8], path: &Path) -> Result<TfjsWeights> {
        let problem = |problem: String| EngineError::Weights {
            path: path.to_owned(),
            problem,
        };
        let groups: Vec<WeightGroup> =
            serde_json::from_slice(manifest).map_err(|error| EngineError::Json {
                path: path.to_owned(),
                what: "a face model's weights manifest",
                message: error.to_string(),
            })?;
        let mut tensors = HashMap::new();
        let mut offset = 0usize;
        let mut total = 0usize;
        for entry in groups.into_iter().flat_map(|group| group.weights) {
            let count = entry
                .shape
                .iter()
                .try_fold(1usize, |count, side| count.checked_mul(*side))
                .filter(|count| total + count <= MAX_VALUES)
                .ok_or_else(|| {
                    problem(format!(
                        "`{}` has an impossible shape {:?}",
                        entry.name, entry.shape
                    ))
                })?;
            total += count;
            let (width, decode): (usize, fn(&[u8]) -> f64) = match (
                entry.dtype.as_str(),
                entry.quantization.as_ref().map(|q| q.dtype.as_str()),
            ) {
                ("float32", None) => (4, |b| {
                    f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }),
                ("float32", Some("uint8")) => (1, |b| f64::from(b[0])),
                ("float32", Some("uint16")) => (2, |b| f64::from(u16::from_le_bytes([b[0], b[1]]))),
                ("float32", Some("float16")) => (2, |b| {
                    f64::from(half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                }),
                (dtype, quantised) => {
                    return Err(problem(format!(
                        "`{}` is stored as {dtype}{}, which a face model does not use",
                        entry.name,
                        quantised
                            .map(|q| format!(" quantised to {q}"))
                            .unwrap_or_default()
                    )));
                }
            };
            let end = offset
                .checked_add(count * width)
                .filter(|end| *end <= bin.len())
                .ok_or_else(|| problem(format!("the weights file ends before `{}`", entry.name)))?;
            let bytes = &bin[offset..end];
            // tfjs dequantises in doubles and stores f32: `q · scale + min`.
            let (scale, min) = match &entry.quantization {
                Some(q) if q.dtype != "float16" => (q.scale, q.min),
                _ => (1.0, 0.0),
            };
            let values: Vec<f32> = bytes
                .chunks_exact(width)
                .map(|chunk| (decode(chunk) * scale + min) as f32)
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(problem(format!(
                    "`{}` holds values that are not numbers",
                    entry.name
                )));
            }
            offset = end;
            tensors.insert(entry.name, (entry.shape, values));
        }
        if offset != bin.len() {
            return Err(problem(format!(
                "the weights file has {} bytes the manifest does not describe",
                bin.len() - offset
            )));
        }
        Ok(TfjsWeights {
            path: path.to_owned(),
            tensors,
        })
    }

    fn problem(&self, problem: String) -> EngineError {
        EngineError::Weights {
            path: self.path.clone(),
            problem,
        }
    }

    fn take(&mut self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<f32>)> {
        let (shape, values) = self
            .tensors
            .remove(name)
            .ok_or_else(|| self.problem(format!("has no weight `{name}`")))?;
        if shape.len() != rank || shape.contains(&0) {
            return Err(self.problem(format!("`{name}` has shape {shape:?}, not {rank} sides")));
        }
        Ok((shape, values))
    }

    fn vector(&mut self, name: &str, device: &Device) -> Result<Tensor<1>> {
        let (shape, values) = self.take(name, 1)?;
        Ok(Tensor::from_data(
            TensorData::new(values, [shape[0]]),
            (device, DType::F32),
        ))
    }

    /// A convolution's filters, `[height, width, in, out]` in tfjs, as burn's `[out, in, h, w]`.
    fn filters(
        &mut self,
        name: &str,
        kernel: Option<(usize, usize)>,
        device: &Device,
    ) -> Result<Tensor<4>> {
        let (shape, tensor) = self.four_sided(name, device)?;
        if kernel.is_some_and(|(h, w)| (h, w) != (shape[0], shape[1])) {
            return Err(self.problem(format!(
                "`{name}` has shape {shape:?}, an unexpected kernel"
            )));
        }
        Ok(tensor.permute([3, 2, 0, 1]))
    }

    /// A depthwise filter, `[h, w, channels, 1]` in tfjs, as burn's grouped `[channels, 1, h, w]`.
    fn depthwise(&mut self, name: &str, device: &Device) -> Result<Tensor<4>> {
        let (shape, tensor) = self.four_sided(name, device)?;
        if shape[3] != 1 {
            return Err(self.problem(format!(
                "`{name}` has shape {shape:?}, not one filter per channel"
            )));
        }
        Ok(tensor.permute([2, 3, 0, 1]))
    }

    /// A four-sided weight in tfjs' layout, with its shape.
    fn four_sided(&mut self, name: &str, device: &Device) -> Result<([usize; 4], Tensor<4>)> {
        let (shape, values) = self.take(name, 4)?;
        let shape = [shape[0], shape[1], shape[2], shape[3]];
        let tensor = Tensor::from_data(TensorData::new(values, shape), (device, DType::F32));
        Ok((shape, tensor))
    }

    /// Every weight in the file was used: a file for another network is refused.
    fn all_used(&self) -> Result<()> {
        match self.tensors.keys().min() {
            Some(name) => Err(self.problem(format!(
                "has a weight `{name}` this face model does not use"
            ))),
            None => Ok(()),
        }
    }
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
    use crate::device::ComputeBackend;

    fn manifest(weights: &str) -> Vec<u8> {
        format!(r#"[{{"paths": ["m.bin"], "weights": [{weights}]}}]"#).into_bytes()
    }

    fn parse(weights: &str, bin: &[u8]) -> std::result::Result<TfjsWeights, String> {
        TfjsWeights::parse(&manifest(weights), bin, Path::new("m.json")).map_err(|e| e.to_string())
    }

    #[test]
    fn quantised_weights_read_as_tfjs_dequantises_them() {
        let weights = parse(
            r#"{"name": "w", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}"#,
            &[0, 2, 255],
        )
        .expect("a good file");
        assert_eq!(weights.tensors["w"].1, vec![-1.0, 0.0, 126.5]);
    }

    #[test]
    fn damaged_weights_are_refused_naming_the_problem() {
        let float = r#"{"name": "w", "shape": [2], "dtype": "float32"}"#;
        let short = parse(float, &[0; 7]).err().expect("too short");
        assert!(
            short.contains("m.json") && short.contains("ends before `w`"),
            "{short}"
        );
        let long = parse(float, &[0; 9]).err().expect("too long");
        assert!(
            long.contains("1 bytes the manifest does not describe"),
            "{long}"
        );
        let huge = parse(
            r#"{"name": "w", "shape": [4294967296, 4294967296, 16], "dtype": "float32"}"#,
            &[],
        )
        .err()
        .expect("huge");
        assert!(huge.contains("impossible shape"), "{huge}");
        let ints = parse(r#"{"name": "w", "shape": [1], "dtype": "int32"}"#, &[0; 4])
            .err()
            .expect("ints");
        assert!(ints.contains("stored as int32"), "{ints}");
        let nan = parse(float, &[0, 0, 0xc0, 0x7f, 0, 0, 0, 0])
            .err()
            .expect("NaN");
        assert!(nan.contains("not numbers"), "{nan}");
        let json = TfjsWeights::parse(b"{", &[], Path::new("m.json"))
            .err()
            .expect("bad JSON")
            .to_string();
        assert!(
            json.contains("m.json") && json.contains("not valid JSON"),
            "{json}"
        );
    }

    #[test]
    fn a_missing_or_foreign_weight_is_named() {
        let device = ComputeBackend::Cpu.device();
        let mut weights = parse(
            r#"{"name": "other", "shape": [1], "dtype": "float32"}"#,
            &[0; 4],
        )
        .expect("parsed");
        let missing = weights
            .vector("conv0/bias", &device)
            .expect_err("missing")
            .to_string();
        assert!(missing.contains("has no weight `conv0/bias`"), "{missing}");
        let extra = weights.all_used().expect_err("extra").to_string();
        assert!(
            extra.contains("`other` this face model does not use"),
            "{extra}"
        );
    }

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
