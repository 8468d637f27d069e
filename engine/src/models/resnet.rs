//! diffusers' `resnet.rs` pieces: `ResnetBlock2D`, `Downsample2D`, `Upsample2D`.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use crate::models::conv;

pub fn conv3x3(device: &Device, inputs: usize, outputs: usize) -> Conv2d {
    Conv2dConfig::new([inputs, outputs], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

pub fn conv1x1(device: &Device, inputs: usize, outputs: usize) -> Conv2d {
    Conv2dConfig::new([inputs, outputs], [1, 1]).init(device)
}

pub fn group_norm(device: &Device, groups: usize, channels: usize, epsilon: f64) -> GroupNorm {
    GroupNormConfig::new(groups, channels)
        .with_epsilon(epsilon)
        .init(device)
}

#[derive(Module, Debug)]
pub struct ResnetBlock2D {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    /// Absent in the VAE, which has no timestep.
    pub time_emb_proj: Option<Linear>,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub conv_shortcut: Option<Conv2d>,
}

/// The sizes of a `ResnetBlock2D`.
pub struct ResnetShape {
    pub inputs: usize,
    pub outputs: usize,
    pub time_channels: Option<usize>,
    pub groups: usize,
    pub epsilon: f64,
}

impl ResnetShape {
    pub fn init(&self, device: &Device) -> ResnetBlock2D {
        ResnetBlock2D {
            norm1: group_norm(device, self.groups, self.inputs, self.epsilon),
            conv1: conv3x3(device, self.inputs, self.outputs),
            time_emb_proj: self
                .time_channels
                .map(|time| LinearConfig::new(time, self.outputs).init(device)),
            norm2: group_norm(device, self.groups, self.outputs, self.epsilon),
            conv2: conv3x3(device, self.outputs, self.outputs),
            conv_shortcut: (self.inputs != self.outputs)
                .then(|| conv1x1(device, self.inputs, self.outputs)),
        }
    }
}

impl ResnetBlock2D {
    pub fn forward(&self, input: Tensor<4>, time_embedding: Option<&Tensor<2>>) -> Tensor<4> {
        let hidden = conv::forward(&self.conv1, silu(self.norm1.forward(input.clone())));
        let hidden = match (&self.time_emb_proj, time_embedding) {
            (Some(projection), Some(embedding)) => {
                hidden
                    + projection
                        .forward(silu(embedding.clone()))
                        .unsqueeze_dim::<3>(2)
                        .unsqueeze_dim::<4>(3)
            }
            _ => hidden,
        };
        let hidden = conv::forward(&self.conv2, silu(self.norm2.forward(hidden)));
        let shortcut = match &self.conv_shortcut {
            Some(shortcut) => conv::forward(shortcut, input),
            None => input,
        };
        shortcut + hidden
    }
}

/// A stride-2 convolution. The UNet pads 1 on every side; the VAE encoder pads only right and
/// bottom (`padding=0` plus an explicit `(0, 1, 0, 1)` pad in diffusers).
#[derive(Module, Debug)]
pub struct Downsample2D {
    pub conv: Conv2d,
}

impl Downsample2D {
    pub fn new(device: &Device, channels: usize, pad_right_bottom_only: bool) -> Self {
        let padding = if pad_right_bottom_only {
            PaddingConfig2d::Explicit(0, 0, 1, 1)
        } else {
            PaddingConfig2d::Explicit(1, 1, 1, 1)
        };
        Downsample2D {
            conv: Conv2dConfig::new([channels, channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(padding)
                .init(device),
        }
    }

    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.conv.forward(input)
    }
}

/// Nearest-neighbour upsampling (to twice the size, or to `size` when the skip connection it meets
/// is odd-sized), then a 3×3 convolution.
#[derive(Module, Debug)]
pub struct Upsample2D {
    pub conv: Conv2d,
}

impl Upsample2D {
    pub fn new(device: &Device, channels: usize) -> Self {
        Upsample2D {
            conv: conv3x3(device, channels, channels),
        }
    }

    pub fn forward(&self, input: Tensor<4>, size: Option<[usize; 2]>) -> Tensor<4> {
        let [_, _, height, width] = input.dims();
        let size = size.unwrap_or([height * 2, width * 2]);
        let options = InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size);
        conv::forward(&self.conv, interpolate(input, options))
    }
}
