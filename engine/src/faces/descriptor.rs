//! face-api.js' 128-d face descriptor: dlib's face-recognition ResNet ported to tfjs.

use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, Tensor, TensorData};
use image::RgbImage;

use super::input::to_input;
use super::tfjs::TfjsWeights;
use crate::device::read_values;
use crate::error::Result;

/// The descriptor's input side and mean colour.
const DESCRIPTOR_INPUT: usize = 150;
const DESCRIPTOR_MEAN_RGB: [f32; 3] = [122.782, 117.001, 104.298];
/// Length of a face descriptor.
pub const DESCRIPTOR_LEN: usize = 128;

/// The files the descriptor is made of, as face-api.js names them.
pub const DESCRIPTOR_FILES: [&str; 2] = [
    "face_recognition_model-weights_manifest.json",
    "face_recognition_model.bin",
];

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

pub(super) struct Descriptor {
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
    pub(super) fn load(weights: &mut TfjsWeights, device: &Device) -> Result<Descriptor> {
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

    pub(super) async fn describe(&self, face: &RgbImage, device: &Device) -> Result<Vec<f32>> {
        let input = to_input(face, DESCRIPTOR_INPUT, true, DESCRIPTOR_MEAN_RGB, device);
        let mut x = relu(self.stem.forward(input, 2));
        x = max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        read_values(pooled.matmul(self.fully_connected.clone())).await
    }
}
