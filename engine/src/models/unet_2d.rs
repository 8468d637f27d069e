//! `UNet2DConditionModel`, built from `unet/config.json`, for the Stable Diffusion 1.x/2.x family
//! and its distillations (SD-Turbo, BK-SDM, SDXS, segmind small/tiny, LCM).

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
use crate::models::attention::{Transformer2DModel, TransformerShape};
use crate::models::conv;
use crate::models::embeddings::{TimestepEmbedding, timestep_features};
use crate::models::held_weights::for_compute;
use crate::models::resnet::{
    Downsample2D, ResnetBlock2D, ResnetShape, Upsample2D, conv3x3, group_norm,
};

/// The checkpoint keys of diffusers' `FeedForward` list, renamed to the fields of ours.
pub const UNET_KEY_REMAPS: [(&str, &str); 2] = [
    (r"\.ff\.net\.0\.proj\.", ".ff.proj_in."),
    (r"\.ff\.net\.2\.", ".ff.proj_out."),
];

/// An int for every block, or one per block.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    All(usize),
    Each(Vec<usize>),
}

/// `only_cross_attention`: one flag for every block, or one per down block.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PerBlockFlag {
    All(bool),
    Each(Vec<bool>),
}

impl PerBlock {
    fn resolve(&self, blocks: usize) -> Vec<usize> {
        match self {
            PerBlock::All(value) => vec![*value; blocks],
            PerBlock::Each(values) => values.clone(),
        }
    }
}

/// `unet/config.json`, with diffusers' defaults.
#[derive(Clone, Debug, Deserialize)]
pub struct UNet2DConditionConfig {
    #[serde(default = "defaults::four")]
    pub in_channels: usize,
    #[serde(default = "defaults::four")]
    pub out_channels: usize,
    #[serde(default = "defaults::yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default = "defaults::mid_block_type")]
    pub mid_block_type: Option<String>,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "defaults::two")]
    pub layers_per_block: usize,
    #[serde(default = "defaults::thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "defaults::norm_eps")]
    pub norm_eps: f64,
    pub cross_attention_dim: usize,
    /// For SD 1.x/2.x configs this is, despite its name, the number of heads (as in diffusers).
    #[serde(default = "defaults::attention_head_dim")]
    pub attention_head_dim: PerBlock,
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    #[serde(default = "defaults::one_per_block")]
    pub transformer_layers_per_block: PerBlock,
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Only changes numerics in half precision; the engine accumulates attention in f32 anyway.
    #[serde(default)]
    pub upcast_attention: bool,
    #[serde(default)]
    pub time_cond_proj_dim: Option<usize>,
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    #[serde(default)]
    pub class_embed_type: Option<String>,
    #[serde(default)]
    pub only_cross_attention: Option<PerBlockFlag>,
    #[serde(default = "defaults::resnet_time_scale_shift")]
    pub resnet_time_scale_shift: String,
}

mod defaults {
    use super::PerBlock;
    pub fn four() -> usize {
        4
    }
    pub fn two() -> usize {
        2
    }
    pub fn thirty_two() -> usize {
        32
    }
    pub fn yes() -> bool {
        true
    }
    pub fn norm_eps() -> f64 {
        1e-5
    }
    pub fn mid_block_type() -> Option<String> {
        Some("UNetMidBlock2DCrossAttn".into())
    }
    pub fn attention_head_dim() -> PerBlock {
        PerBlock::All(8)
    }
    pub fn one_per_block() -> PerBlock {
        PerBlock::All(1)
    }
    pub fn resnet_time_scale_shift() -> String {
        "default".into()
    }
}

#[derive(Module, Debug)]
pub struct UNet2DConditionModel {
    pub conv_in: Conv2d,
    pub time_embedding: TimestepEmbedding,
    pub down_blocks: Vec<UNetBlock>,
    pub mid_block: Option<UNetBlock>,
    pub up_blocks: Vec<UNetBlock>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
    feature_channels: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
}

/// A down, mid or up block: resnets, optionally a transformer after each, optionally a resampler.
#[derive(Module, Debug)]
pub struct UNetBlock {
    pub resnets: Vec<ResnetBlock2D>,
    pub attentions: Vec<Transformer2DModel>,
    pub downsamplers: Vec<Downsample2D>,
    pub upsamplers: Vec<Upsample2D>,
}

impl crate::loaders::files::Checked for UNet2DConditionConfig {
    fn check(&self) -> std::result::Result<(), String> {
        self.validate()
    }
}

impl UNet2DConditionConfig {
    /// Checks what this implementation covers, with a reason for the parent-facing error.
    fn validate(&self) -> std::result::Result<(), String> {
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
        count("layers_per_block", self.layers_per_block, 1, MAX_LAYERS)?;
        count("norm_num_groups", self.norm_num_groups, 1, MAX_CHANNELS)?;
        count(
            "cross_attention_dim",
            self.cross_attention_dim,
            1,
            MAX_CHANNELS,
        )?;
        if let Some(dim) = self.time_cond_proj_dim {
            count("time_cond_proj_dim", dim, 1, MAX_CHANNELS)?;
        }
        positive("norm_eps", self.norm_eps)?;
        let blocks = self.block_out_channels.len();
        if self.down_block_types.len() != blocks || self.up_block_types.len() != blocks {
            return Err(
                "down_block_types, up_block_types and block_out_channels differ in length".into(),
            );
        }
        for kind in self.down_block_types.iter().chain(&self.up_block_types) {
            if ![
                "CrossAttnDownBlock2D",
                "DownBlock2D",
                "CrossAttnUpBlock2D",
                "UpBlock2D",
            ]
            .contains(&kind.as_str())
            {
                return Err(format!("the block type `{kind}` is not supported"));
            }
        }
        if let Some(kind) = &self.mid_block_type
            && kind != "UNetMidBlock2DCrossAttn"
        {
            return Err(format!("the mid block type `{kind}` is not supported"));
        }
        if self.addition_embed_type.is_some() || self.class_embed_type.is_some() {
            return Err(
                "class or addition embeddings (SDXL-style conditioning) are not supported".into(),
            );
        }
        if let Some(PerBlockFlag::Each(flags)) = &self.only_cross_attention
            && flags.len() != blocks
        {
            return Err(format!(
                "only_cross_attention has {} entries for {blocks} blocks",
                flags.len()
            ));
        }
        if self.resnet_time_scale_shift != "default" {
            return Err(format!(
                "resnet_time_scale_shift `{}` is not supported",
                self.resnet_time_scale_shift
            ));
        }
        let per_block = [self.heads(), self.attention_layers()];
        if per_block.iter().any(|values| values.len() != blocks) {
            return Err("a per-block list has the wrong length".into());
        }
        counts(
            "transformer_layers_per_block",
            &self.attention_layers(),
            1,
            MAX_LAYERS,
        )?;
        for (channels, heads) in self.block_out_channels.iter().zip(self.heads()) {
            if heads == 0 || channels % heads != 0 || channels % self.norm_num_groups != 0 {
                return Err(format!(
                    "{channels} channels do not split into {heads} heads and {} groups",
                    self.norm_num_groups
                ));
            }
        }
        Ok(())
    }

    /// Heads per block: `num_attention_heads`, or else `attention_head_dim` (diffusers' reading).
    pub(crate) fn heads(&self) -> Vec<usize> {
        let blocks = self.block_out_channels.len();
        self.num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .resolve(blocks)
    }

    /// Per down block; up blocks read it reversed, as diffusers does.
    pub(crate) fn only_cross_attention(&self) -> Vec<bool> {
        let blocks = self.block_out_channels.len();
        match &self.only_cross_attention {
            None => vec![false; blocks],
            Some(PerBlockFlag::All(flag)) => vec![*flag; blocks],
            Some(PerBlockFlag::Each(flags)) => flags.clone(),
        }
    }

    pub(crate) fn attention_layers(&self) -> Vec<usize> {
        self.transformer_layers_per_block
            .resolve(self.block_out_channels.len())
    }

    pub fn init(&self, device: &Device) -> UNet2DConditionModel {
        let channels = &self.block_out_channels;
        let blocks = channels.len();
        let (heads, layers) = (self.heads(), self.attention_layers());
        let only_cross = self.only_cross_attention();
        let time_channels = channels[0] * 4;
        let resnet = |inputs, outputs| {
            ResnetShape {
                inputs,
                outputs,
                time_channels: Some(time_channels),
                groups: self.norm_num_groups,
                epsilon: self.norm_eps,
            }
            .init(device)
        };
        let transformer = |channels, heads, layers, only_cross_attention| {
            TransformerShape {
                channels,
                heads,
                context_dim: self.cross_attention_dim,
                layers,
                groups: self.norm_num_groups,
                linear_projection: self.use_linear_projection,
                only_cross_attention,
            }
            .init(device)
        };

        let mut output = channels[0];
        let down_blocks = self
            .down_block_types
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let input = output;
                output = channels[i];
                let cross = kind.starts_with("CrossAttn");
                UNetBlock {
                    resnets: (0..self.layers_per_block)
                        .map(|j| resnet(if j == 0 { input } else { output }, output))
                        .collect(),
                    attentions: if cross {
                        (0..self.layers_per_block)
                            .map(|_| transformer(output, heads[i], layers[i], only_cross[i]))
                            .collect()
                    } else {
                        vec![]
                    },
                    downsamplers: if i + 1 < blocks {
                        vec![Downsample2D::new(device, output, false)]
                    } else {
                        vec![]
                    },
                    upsamplers: vec![],
                }
            })
            .collect();

        let last = channels[blocks - 1];
        let mid_block = self.mid_block_type.as_ref().map(|_| UNetBlock {
            resnets: vec![resnet(last, last), resnet(last, last)],
            // diffusers' UNetMidBlock2DCrossAttn has no only_cross_attention.
            attentions: vec![transformer(
                last,
                heads[blocks - 1],
                layers[blocks - 1],
                false,
            )],
            downsamplers: vec![],
            upsamplers: vec![],
        });

        let reversed: Vec<usize> = channels.iter().rev().copied().collect();
        let mut output = reversed[0];
        let up_blocks = self
            .up_block_types
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let previous = output;
                output = reversed[i];
                let input = reversed[(i + 1).min(blocks - 1)];
                let count = self.layers_per_block + 1;
                let cross = kind.starts_with("CrossAttn");
                let block_heads = heads[blocks - 1 - i];
                let block_layers = layers[blocks - 1 - i];
                let block_only_cross = only_cross[blocks - 1 - i];
                UNetBlock {
                    resnets: (0..count)
                        .map(|j| {
                            let skip = if j == count - 1 { input } else { output };
                            let from = if j == 0 { previous } else { output };
                            resnet(from + skip, output)
                        })
                        .collect(),
                    attentions: if cross {
                        (0..count)
                            .map(|_| {
                                transformer(output, block_heads, block_layers, block_only_cross)
                            })
                            .collect()
                    } else {
                        vec![]
                    },
                    downsamplers: vec![],
                    upsamplers: if i + 1 < blocks {
                        vec![Upsample2D::new(device, output)]
                    } else {
                        vec![]
                    },
                }
            })
            .collect();

        UNet2DConditionModel {
            conv_in: conv3x3(device, self.in_channels, channels[0]),
            time_embedding: TimestepEmbedding::new(
                device,
                channels[0],
                time_channels,
                self.time_cond_proj_dim,
            ),
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: group_norm(device, self.norm_num_groups, channels[0], self.norm_eps),
            conv_out: conv3x3(device, channels[0], self.out_channels),
            feature_channels: channels[0],
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
        }
    }
}

impl UNet2DConditionModel {
    /// Loads `unet/` of a diffusers folder.
    pub async fn load(
        files: &impl ModelFiles,
        variant: Option<&str>,
        device: &Device,
    ) -> Result<(Self, UNet2DConditionConfig)> {
        let config: UNet2DConditionConfig = files
            .config("unet/config.json", "the UNet's configuration")
            .await?;
        let weights = WeightFiles::find(files, "unet", "diffusion_pytorch_model", variant).await?;
        let unet = load_into(
            config.init(device),
            files,
            &weights,
            &UNET_KEY_REMAPS,
            load_dtype(device),
        )
        .await?;
        Ok((unet, config))
    }

    /// Predicts noise (or velocity) for `sample` `[batch, 4, h, w]` at `timestep`, conditioned on
    /// `context` `[batch, 77, dim]` and, for LCM, the guidance embedding `condition`.
    pub fn forward(
        &self,
        sample: Tensor<4>,
        timestep: f64,
        context: &Tensor<3>,
        condition: Option<Tensor<2>>,
    ) -> Tensor<4> {
        let this = for_compute(self);
        let [batch, _, _, _] = sample.dims();
        let device = sample.device();
        let features = timestep_features(
            &vec![timestep; batch],
            this.feature_channels,
            this.flip_sin_to_cos,
            this.freq_shift,
            &device,
        );
        let time = this.time_embedding.forward(features, condition);

        let mut hidden = conv::forward(&this.conv_in, sample);
        let mut skips = vec![hidden.clone()];
        for block in &this.down_blocks {
            for (index, resnet) in block.resnets.iter().enumerate() {
                hidden = resnet.forward(hidden, Some(&time));
                if let Some(attention) = block.attentions.get(index) {
                    hidden = attention.forward(hidden, context);
                }
                skips.push(hidden.clone());
            }
            for downsampler in &block.downsamplers {
                hidden = downsampler.forward(hidden);
                skips.push(hidden.clone());
            }
        }
        if let Some(mid) = &this.mid_block {
            hidden = mid.resnets[0].forward(hidden, Some(&time));
            hidden = mid.attentions[0].forward(hidden, context);
            hidden = mid.resnets[1].forward(hidden, Some(&time));
        }
        for block in &this.up_blocks {
            for (index, resnet) in block.resnets.iter().enumerate() {
                let skip = skips
                    .pop()
                    .expect("one skip connection per up-block resnet");
                hidden = resnet.forward(Tensor::cat(vec![hidden, skip], 1), Some(&time));
                if let Some(attention) = block.attentions.get(index) {
                    hidden = attention.forward(hidden, context);
                }
            }
            for upsampler in &block.upsamplers {
                // Meet the next skip connection's size exactly (odd sizes do not double evenly).
                let size = skips.last().map(|skip| {
                    let [_, _, height, width] = skip.dims();
                    [height, width]
                });
                hidden = upsampler.forward(hidden, size);
            }
        }
        conv::forward(&this.conv_out, silu(this.conv_norm_out.forward(hidden)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(only_cross_attention: &str) -> UNet2DConditionConfig {
        serde_json::from_str(&format!(
            r#"{{"block_out_channels": [8, 16, 32], "attention_head_dim": 2,
                "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
                "mid_block_type": null, "norm_num_groups": 4, "cross_attention_dim": 12,
                "only_cross_attention": {only_cross_attention}}}"#
        ))
        .expect("a config")
    }

    #[test]
    fn only_cross_attention_reads_as_diffusers_writes_it() {
        let sdxs = config("[true, false, false]");
        assert_eq!(sdxs.validate(), Ok(()));
        assert_eq!(sdxs.only_cross_attention(), [true, false, false]);
        assert_eq!(config("true").only_cross_attention(), [true; 3]);
        assert_eq!(config("false").only_cross_attention(), [false; 3]);
        assert_eq!(config("null").only_cross_attention(), [false; 3]);
        assert_eq!(
            config("[true, false]").validate(),
            Err("only_cross_attention has 2 entries for 3 blocks".into())
        );
    }
}
