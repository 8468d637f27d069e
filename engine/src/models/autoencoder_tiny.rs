//! `AutoencoderTiny` (TAESD): a small, fast stand-in for the VAE — a few convolutions per level.
//!
//! The checkpoint is two `nn.Sequential`s, so parameters sit at layer indices
//! (`decoder.layers.2.conv.0.weight`); parameter-free layers (ReLU, upsampling) are `None` slots.

use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::device::load_dtype;
use crate::error::Result;
use crate::loaders::files::ModelFiles;
use crate::loaders::weights::{WeightFiles, load_into};
use crate::models::conv;
use crate::models::held_weights::for_compute;

#[derive(Clone, Debug, Deserialize)]
pub struct AutoencoderTinyConfig {
    #[serde(default = "defaults::three")]
    pub in_channels: usize,
    #[serde(default = "defaults::three")]
    pub out_channels: usize,
    #[serde(default = "defaults::channels")]
    pub encoder_block_out_channels: Vec<usize>,
    #[serde(default = "defaults::channels")]
    pub decoder_block_out_channels: Vec<usize>,
    #[serde(default = "defaults::encoder_blocks")]
    pub num_encoder_blocks: Vec<usize>,
    #[serde(default = "defaults::decoder_blocks")]
    pub num_decoder_blocks: Vec<usize>,
    #[serde(default = "defaults::four")]
    pub latent_channels: usize,
    #[serde(default = "defaults::relu")]
    pub act_fn: String,
    #[serde(default = "defaults::nearest")]
    pub upsample_fn: String,
    #[serde(default = "defaults::one")]
    pub scaling_factor: f64,
}

mod defaults {
    pub fn three() -> usize {
        3
    }
    pub fn four() -> usize {
        4
    }
    pub fn one() -> f64 {
        1.0
    }
    pub fn channels() -> Vec<usize> {
        vec![64; 4]
    }
    pub fn encoder_blocks() -> Vec<usize> {
        vec![1, 3, 3, 3]
    }
    pub fn decoder_blocks() -> Vec<usize> {
        vec![3, 3, 3, 1]
    }
    pub fn relu() -> String {
        "relu".into()
    }
    pub fn nearest() -> String {
        "nearest".into()
    }
}

#[derive(Module, Debug)]
pub struct AutoencoderTiny {
    pub encoder: TinyCoder,
    pub decoder: TinyCoder,
}

#[derive(Module, Debug)]
pub struct TinyCoder {
    pub layers: Vec<Option<TinyLayer>>,
    #[module(skip)]
    steps: Vec<TinyStep>,
}

#[derive(Module, Debug)]
pub enum TinyLayer {
    Conv(Conv2d),
    Block(TinyBlock),
}

/// What each slot of `layers` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TinyStep {
    Layer,
    Relu,
    Upsample,
}

/// Three 3×3 convolutions with ReLUs between (slots 1 and 3 are the ReLUs), a skip, a ReLU.
#[derive(Module, Debug)]
pub struct TinyBlock {
    pub conv: Vec<Option<Conv2d>>,
    pub skip: Option<Conv2d>,
}

fn conv(device: &Device, inputs: usize, outputs: usize, stride: usize, bias: bool) -> Conv2d {
    Conv2dConfig::new([inputs, outputs], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .init(device)
}

fn block(device: &Device, channels: usize) -> TinyBlock {
    let layer = || Some(conv(device, channels, channels, 1, true));
    TinyBlock {
        conv: vec![layer(), None, layer(), None, layer()],
        skip: None,
    }
}

impl crate::loaders::files::Checked for AutoencoderTinyConfig {
    fn check(&self) -> std::result::Result<(), String> {
        use crate::loaders::limits::{
            MAX_CHANNELS, MAX_IMAGE_CHANNELS, MAX_LAYERS, count, counts, positive,
        };
        count("in_channels", self.in_channels, 1, MAX_IMAGE_CHANNELS)?;
        count("out_channels", self.out_channels, 1, MAX_IMAGE_CHANNELS)?;
        count(
            "latent_channels",
            self.latent_channels,
            1,
            MAX_IMAGE_CHANNELS,
        )?;
        let channels = MAX_CHANNELS;
        counts(
            "encoder_block_out_channels",
            &self.encoder_block_out_channels,
            1,
            channels,
        )?;
        counts(
            "decoder_block_out_channels",
            &self.decoder_block_out_channels,
            1,
            channels,
        )?;
        counts(
            "num_encoder_blocks",
            &self.num_encoder_blocks,
            0,
            MAX_LAYERS,
        )?;
        counts(
            "num_decoder_blocks",
            &self.num_decoder_blocks,
            0,
            MAX_LAYERS,
        )?;
        positive("scaling_factor", self.scaling_factor)?;
        self.validate()
    }
}

impl AutoencoderTinyConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.act_fn != "relu" || self.upsample_fn != "nearest" {
            return Err(format!(
                "act_fn `{}` with upsample_fn `{}` is not supported",
                self.act_fn, self.upsample_fn
            ));
        }
        if self.encoder_block_out_channels.len() != self.num_encoder_blocks.len()
            || self.decoder_block_out_channels.len() != self.num_decoder_blocks.len()
            || self.encoder_block_out_channels.is_empty()
            || self.decoder_block_out_channels.is_empty()
        {
            return Err("the block lists differ in length".into());
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> AutoencoderTiny {
        let mut encoder = TinyCoder {
            layers: vec![],
            steps: vec![],
        };
        for (i, (&channels, &blocks)) in self
            .encoder_block_out_channels
            .iter()
            .zip(&self.num_encoder_blocks)
            .enumerate()
        {
            let first = if i == 0 {
                conv(device, self.in_channels, channels, 1, true)
            } else {
                conv(device, channels, channels, 2, false)
            };
            encoder.push(TinyLayer::Conv(first));
            for _ in 0..blocks {
                encoder.push(TinyLayer::Block(block(device, channels)));
            }
        }
        let last = *self
            .encoder_block_out_channels
            .last()
            .expect("validated non-empty");
        encoder.push(TinyLayer::Conv(conv(
            device,
            last,
            self.latent_channels,
            1,
            true,
        )));

        let mut decoder = TinyCoder {
            layers: vec![],
            steps: vec![],
        };
        decoder.push(TinyLayer::Conv(conv(
            device,
            self.latent_channels,
            self.decoder_block_out_channels[0],
            1,
            true,
        )));
        decoder.push_step(TinyStep::Relu);
        let levels = self.decoder_block_out_channels.len();
        for (i, (&channels, &blocks)) in self
            .decoder_block_out_channels
            .iter()
            .zip(&self.num_decoder_blocks)
            .enumerate()
        {
            let last_level = i + 1 == levels;
            for _ in 0..blocks {
                decoder.push(TinyLayer::Block(block(device, channels)));
            }
            if !last_level {
                decoder.push_step(TinyStep::Upsample);
            }
            let outputs = if last_level {
                self.out_channels
            } else {
                channels
            };
            decoder.push(TinyLayer::Conv(conv(
                device, channels, outputs, 1, last_level,
            )));
        }
        AutoencoderTiny { encoder, decoder }
    }
}

impl TinyCoder {
    fn push(&mut self, layer: TinyLayer) {
        self.layers.push(Some(layer));
        self.steps.push(TinyStep::Layer);
    }

    fn push_step(&mut self, step: TinyStep) {
        self.layers.push(None);
        self.steps.push(step);
    }

    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.layers
            .iter()
            .zip(&self.steps)
            .fold(input, |hidden, (layer, step)| match (step, layer) {
                (TinyStep::Layer, Some(TinyLayer::Conv(layer))) => conv::forward(layer, hidden),
                (TinyStep::Layer, Some(TinyLayer::Block(block))) => block.forward(hidden),
                (TinyStep::Relu, _) => relu(hidden),
                (TinyStep::Upsample, _) => {
                    let [_, _, height, width] = hidden.dims();
                    let options = InterpolateOptions::new(InterpolateMode::Nearest)
                        .with_output_size([height * 2, width * 2]);
                    interpolate(hidden, options)
                }
                (TinyStep::Layer, None) => unreachable!("every layer step holds a layer"),
            })
    }
}

impl TinyBlock {
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let convs: Vec<&Conv2d> = self.conv.iter().flatten().collect();
        let hidden = relu(conv::forward(convs[0], input.clone()));
        let hidden = conv::forward(convs[2], relu(conv::forward(convs[1], hidden)));
        let skip = match &self.skip {
            Some(skip) => conv::forward(skip, input),
            None => input,
        };
        relu(hidden + skip)
    }
}

impl AutoencoderTiny {
    pub async fn load(
        files: &impl ModelFiles,
        variant: Option<&str>,
        device: &Device,
    ) -> Result<(Self, AutoencoderTinyConfig)> {
        let config: AutoencoderTinyConfig = files
            .config("vae/config.json", "the VAE's configuration")
            .await?;
        let weights = WeightFiles::find(files, "vae", "diffusion_pytorch_model", variant).await?;
        let vae = load_into(
            config.init(device),
            files,
            &weights,
            &[],
            load_dtype(device),
        )
        .await?;
        Ok((vae, config))
    }

    /// Pictures in [-1, 1] → latents (TAESD works in [0, 1] internally).
    pub fn encode(&self, image: Tensor<4>) -> Tensor<4> {
        let this = for_compute(self);
        this.encoder.forward((image + 1.0) / 2.0)
    }

    /// Latents → pictures in [-1, 1]; the input is soft-clamped to ±3 first, as TAESD expects.
    pub fn decode(&self, latents: Tensor<4>) -> Tensor<4> {
        let this = for_compute(self);
        let clamped = (latents / 3.0).tanh() * 3.0;
        this.decoder.forward(clamped) * 2.0 - 1.0
    }
}
