//! `AutoencoderKL`: the VAE that turns latents into pictures (decoder) and photos into latents
//! (encoder, for avatar training). Built from `vae/config.json`.

use burn::module::Module;
use burn::nn::GroupNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::device::load_dtype;
use crate::error::Result;
use crate::loaders::files::ModelFiles;
use crate::loaders::weights::{WeightFiles, load_into};
use crate::models::attention::SpatialAttention;
use crate::models::conv;
use crate::models::held_weights::for_compute;
use crate::models::resnet::{
    Downsample2D, ResnetBlock2D, ResnetShape, Upsample2D, conv1x1, conv3x3, group_norm,
};

/// The VAE's normalisation epsilon (fixed in diffusers' encoder and decoder).
const EPSILON: f64 = 1e-6;

/// Checkpoints saved before diffusers 0.14 name the attention projections differently.
const LEGACY_ATTENTION_KEYS: [(&str, &str); 4] = [
    (r"\.attentions\.0\.query\.", ".attentions.0.to_q."),
    (r"\.attentions\.0\.key\.", ".attentions.0.to_k."),
    (r"\.attentions\.0\.value\.", ".attentions.0.to_v."),
    (r"\.attentions\.0\.proj_attn\.", ".attentions.0.to_out.0."),
];

#[derive(Clone, Debug, Deserialize)]
pub struct AutoencoderKLConfig {
    #[serde(default = "defaults::three")]
    pub in_channels: usize,
    #[serde(default = "defaults::three")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "defaults::one")]
    pub layers_per_block: usize,
    #[serde(default = "defaults::four")]
    pub latent_channels: usize,
    #[serde(default = "defaults::thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "defaults::scaling_factor")]
    pub scaling_factor: f64,
    #[serde(default = "defaults::yes")]
    pub use_quant_conv: bool,
    #[serde(default = "defaults::yes")]
    pub use_post_quant_conv: bool,
    #[serde(default = "defaults::yes")]
    pub mid_block_add_attention: bool,
}

mod defaults {
    pub fn one() -> usize {
        1
    }
    pub fn three() -> usize {
        3
    }
    pub fn four() -> usize {
        4
    }
    pub fn thirty_two() -> usize {
        32
    }
    pub fn scaling_factor() -> f64 {
        0.18215
    }
    pub fn yes() -> bool {
        true
    }
}

#[derive(Module, Debug)]
pub struct AutoencoderKL {
    pub encoder: VaeCoder,
    pub decoder: VaeCoder,
    pub quant_conv: Option<Conv2d>,
    pub post_quant_conv: Option<Conv2d>,
}

/// The encoder or the decoder: conv in, resolution blocks, mid block, norm + conv out.
#[derive(Module, Debug)]
pub struct VaeCoder {
    pub conv_in: Conv2d,
    pub down_blocks: Vec<VaeBlock>,
    pub mid_block: VaeMidBlock,
    pub up_blocks: Vec<VaeBlock>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

#[derive(Module, Debug)]
pub struct VaeBlock {
    pub resnets: Vec<ResnetBlock2D>,
    pub downsamplers: Vec<Downsample2D>,
    pub upsamplers: Vec<Upsample2D>,
}

#[derive(Module, Debug)]
pub struct VaeMidBlock {
    pub resnets: Vec<ResnetBlock2D>,
    pub attentions: Vec<SpatialAttention>,
}

impl AutoencoderKLConfig {
    pub fn init(&self, device: &Device) -> AutoencoderKL {
        let channels = &self.block_out_channels;
        let blocks = channels.len();
        let groups = self.norm_num_groups;
        let resnet = |inputs, outputs| {
            ResnetShape {
                inputs,
                outputs,
                time_channels: None,
                groups,
                epsilon: EPSILON,
            }
            .init(device)
        };
        let last = channels[blocks - 1];
        let mid_block = || VaeMidBlock {
            resnets: vec![resnet(last, last), resnet(last, last)],
            attentions: if self.mid_block_add_attention {
                vec![SpatialAttention::new(device, last, groups, EPSILON)]
            } else {
                vec![]
            },
        };

        let mut output = channels[0];
        let down_blocks = (0..blocks)
            .map(|i| {
                let input = output;
                output = channels[i];
                VaeBlock {
                    resnets: (0..self.layers_per_block)
                        .map(|j| resnet(if j == 0 { input } else { output }, output))
                        .collect(),
                    downsamplers: if i + 1 < blocks {
                        vec![Downsample2D::new(device, output, true)]
                    } else {
                        vec![]
                    },
                    upsamplers: vec![],
                }
            })
            .collect();
        let encoder = VaeCoder {
            conv_in: conv3x3(device, self.in_channels, channels[0]),
            down_blocks,
            mid_block: mid_block(),
            up_blocks: vec![],
            conv_norm_out: group_norm(device, groups, last, EPSILON),
            conv_out: conv3x3(device, last, 2 * self.latent_channels),
        };

        let reversed: Vec<usize> = channels.iter().rev().copied().collect();
        let mut output = reversed[0];
        let up_blocks = (0..blocks)
            .map(|i| {
                let input = output;
                output = reversed[i];
                VaeBlock {
                    resnets: (0..=self.layers_per_block)
                        .map(|j| resnet(if j == 0 { input } else { output }, output))
                        .collect(),
                    downsamplers: vec![],
                    upsamplers: if i + 1 < blocks {
                        vec![Upsample2D::new(device, output)]
                    } else {
                        vec![]
                    },
                }
            })
            .collect();
        let decoder = VaeCoder {
            conv_in: conv3x3(device, self.latent_channels, last),
            down_blocks: vec![],
            mid_block: mid_block(),
            up_blocks,
            conv_norm_out: group_norm(device, groups, channels[0], EPSILON),
            conv_out: conv3x3(device, channels[0], self.out_channels),
        };
        let latent = self.latent_channels;
        AutoencoderKL {
            encoder,
            decoder,
            quant_conv: self
                .use_quant_conv
                .then(|| conv1x1(device, 2 * latent, 2 * latent)),
            post_quant_conv: self
                .use_post_quant_conv
                .then(|| conv1x1(device, latent, latent)),
        }
    }
}

impl crate::loaders::files::Checked for AutoencoderKLConfig {
    fn check(&self) -> std::result::Result<(), String> {
        use crate::loaders::limits::{
            MAX_CHANNELS, MAX_IMAGE_CHANNELS, MAX_LAYERS, count, counts, positive,
        };
        counts(
            "block_out_channels",
            &self.block_out_channels,
            1,
            MAX_CHANNELS,
        )?;
        count("in_channels", self.in_channels, 1, MAX_IMAGE_CHANNELS)?;
        count("out_channels", self.out_channels, 1, MAX_IMAGE_CHANNELS)?;
        count(
            "latent_channels",
            self.latent_channels,
            1,
            MAX_IMAGE_CHANNELS,
        )?;
        count("layers_per_block", self.layers_per_block, 1, MAX_LAYERS)?;
        count("norm_num_groups", self.norm_num_groups, 1, MAX_CHANNELS)?;
        positive("scaling_factor", self.scaling_factor)?;
        if let Some(channels) = self
            .block_out_channels
            .iter()
            .find(|channels| !channels.is_multiple_of(self.norm_num_groups))
        {
            return Err(format!(
                "block_out_channels must be multiples of norm_num_groups ({}), but one is {channels}",
                self.norm_num_groups
            ));
        }
        Ok(())
    }
}

impl AutoencoderKL {
    /// Loads `vae/` of a diffusers folder.
    pub async fn load(
        files: &impl ModelFiles,
        variant: Option<&str>,
        device: &Device,
    ) -> Result<(Self, AutoencoderKLConfig)> {
        let config: AutoencoderKLConfig = files
            .config("vae/config.json", "the VAE's configuration")
            .await?;
        let weights = WeightFiles::find(files, "vae", "diffusion_pytorch_model", variant).await?;
        let vae = load_into(
            config.init(device),
            files,
            &weights,
            &LEGACY_ATTENTION_KEYS,
            load_dtype(device),
        )
        .await?;
        Ok((vae, config))
    }

    /// Pictures in [-1, 1] `[batch, 3, h, w]` → the mean of the latent distribution (unscaled).
    pub fn encode_mean(&self, image: Tensor<4>) -> Tensor<4> {
        let this = for_compute(self);
        let encoder = &this.encoder;
        let mut hidden = conv::forward(&encoder.conv_in, image);
        for block in &encoder.down_blocks {
            for resnet in &block.resnets {
                hidden = resnet.forward(hidden, None);
            }
            for downsampler in &block.downsamplers {
                hidden = downsampler.forward(hidden);
            }
        }
        hidden = encoder.mid_block.forward(hidden);
        let moments = conv::forward(
            &encoder.conv_out,
            silu(encoder.conv_norm_out.forward(hidden)),
        );
        let moments = match &this.quant_conv {
            Some(quant) => conv::forward(quant, moments),
            None => moments,
        };
        let latent_channels = moments.dims()[1] / 2;
        moments.narrow(1, 0, latent_channels)
    }

    /// Latents (already divided by the scaling factor) → pictures in about [-1, 1].
    pub fn decode(&self, latents: Tensor<4>) -> Tensor<4> {
        let this = for_compute(self);
        let decoder = &this.decoder;
        let latents = match &this.post_quant_conv {
            Some(quant) => conv::forward(quant, latents),
            None => latents,
        };
        let mut hidden = decoder
            .mid_block
            .forward(conv::forward(&decoder.conv_in, latents));
        for block in &decoder.up_blocks {
            for resnet in &block.resnets {
                hidden = resnet.forward(hidden, None);
            }
            for upsampler in &block.upsamplers {
                hidden = upsampler.forward(hidden, None);
            }
        }
        conv::forward(
            &decoder.conv_out,
            silu(decoder.conv_norm_out.forward(hidden)),
        )
    }
}

impl VaeMidBlock {
    fn forward(&self, hidden: Tensor<4>) -> Tensor<4> {
        let hidden = self.resnets[0].forward(hidden, None);
        let hidden = match self.attentions.first() {
            Some(attention) => attention.forward(hidden),
            None => hidden,
        };
        self.resnets[1].forward(hidden, None)
    }
}

/// Whichever autoencoder a folder's `vae/` holds: `AutoencoderKL`, or TAESD's `AutoencoderTiny`.
pub enum Vae {
    Kl(Box<AutoencoderKL>),
    Tiny(crate::models::autoencoder_tiny::AutoencoderTiny),
}

/// What the pipeline needs to know of either autoencoder.
pub struct VaeInfo {
    pub latent_channels: usize,
    pub scaling_factor: f64,
}

/// Checks `vae/config.json` as the class it names, without reading weights.
pub async fn check_config(files: &impl ModelFiles) -> Result<()> {
    let what = "the VAE's configuration";
    if is_tiny(files).await? {
        files
            .config::<crate::models::autoencoder_tiny::AutoencoderTinyConfig>(
                "vae/config.json",
                what,
            )
            .await?;
    } else {
        files
            .config::<AutoencoderKLConfig>("vae/config.json", what)
            .await?;
    }
    Ok(())
}

pub(crate) async fn is_tiny(files: &impl ModelFiles) -> Result<bool> {
    #[derive(Deserialize)]
    struct ClassName {
        #[serde(rename = "_class_name", default)]
        class_name: String,
    }
    let class: ClassName = files
        .json("vae/config.json", "the VAE's configuration")
        .await?;
    Ok(class.class_name == "AutoencoderTiny")
}

impl Vae {
    /// Loads `vae/`, choosing the class by `_class_name` in its config.
    pub async fn load(
        files: &impl ModelFiles,
        variant: Option<&str>,
        device: &Device,
    ) -> Result<(Self, VaeInfo)> {
        if is_tiny(files).await? {
            let (vae, config) =
                crate::models::autoencoder_tiny::AutoencoderTiny::load(files, variant, device)
                    .await?;
            let info = VaeInfo {
                latent_channels: config.latent_channels,
                scaling_factor: config.scaling_factor,
            };
            Ok((Vae::Tiny(vae), info))
        } else {
            let (vae, config) = AutoencoderKL::load(files, variant, device).await?;
            let info = VaeInfo {
                latent_channels: config.latent_channels,
                scaling_factor: config.scaling_factor,
            };
            Ok((Vae::Kl(Box::new(vae)), info))
        }
    }

    /// The same autoencoder with its weights out of any gradient graph: on an autodiff device
    /// an encoder that tracks gradients keeps every activation of a 512² photo alive.
    pub fn no_grad(self) -> Self {
        use burn::module::Module;
        match self {
            Vae::Kl(vae) => Vae::Kl(Box::new(vae.no_grad())),
            Vae::Tiny(vae) => Vae::Tiny(vae.no_grad()),
        }
    }

    /// Latents (divided by the scaling factor) → pictures in about [-1, 1].
    pub fn decode(&self, latents: Tensor<4>) -> Tensor<4> {
        match self {
            Vae::Kl(vae) => vae.decode(latents),
            Vae::Tiny(vae) => vae.decode(latents),
        }
    }

    /// Pictures in [-1, 1] → latents (the distribution's mean for `AutoencoderKL`), unscaled.
    pub fn encode(&self, image: Tensor<4>) -> Tensor<4> {
        match self {
            Vae::Kl(vae) => vae.encode_mean(image),
            Vae::Tiny(vae) => vae.encode(image),
        }
    }
}
