//! face-api.js' tiny face detector: a Tiny-YOLOv2 on depthwise-separable convolutions, its box
//! decoding and its non-maximum suppression.

use burn::tensor::activation::leaky_relu;
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};
use image::RgbImage;

use super::input::to_input;
use super::tfjs::TfjsWeights;
use crate::device::read_values;
use crate::error::Result;

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

/// The files the detector is made of, as face-api.js names them.
/// The files each model is made of, as face-api.js names them.
pub const DETECTOR_FILES: [&str; 2] = [
    "tiny_face_detector_model-weights_manifest.json",
    "tiny_face_detector_model.bin",
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

struct Separable {
    depthwise: Tensor<4>,
    pointwise: Tensor<4>,
    bias: Tensor<1>,
}

pub(super) struct Detector {
    conv0: (Tensor<4>, Tensor<1>),
    separable: Vec<Separable>,
    conv8: (Tensor<4>, Tensor<1>),
}

impl Detector {
    pub(super) fn load(weights: &mut TfjsWeights, device: &Device) -> Result<Detector> {
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

    pub(super) async fn detect(&self, picture: &RgbImage, device: &Device) -> Result<Vec<Face>> {
        let input = to_input(picture, DETECTOR_INPUT, false, DETECTOR_MEAN_RGB, device);
        let grid = self.forward(input);
        let [_, _, cells, _] = grid.dims();
        let values = read_values(grid).await?;
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
