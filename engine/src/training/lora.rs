//! The avatar's LoRA while it trains (pivotal tuning, see `training::avatar`): rank-`r`
//! factors on the UNet's attention projections, live on the weights so the loss's gradient
//! reaches them, written in diffusers' format when done.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::device::read_values;
use crate::error::{EngineError, Result};
use crate::loaders::lora::{Component, Factor, FileLayer, LayerName, LoraFile, alpha_over_rank};
use crate::models::lora::{AdaptableLayer, AdaptableLayers, LowRankPair, LowRankUpdates, attach};
use crate::models::unet_2d::UNet2DConditionModel;

/// The layers an avatar's LoRA trains: every attention projection of the UNet, self- and
/// cross-attention (diffusers' `train_dreambooth_lora` targets).
pub const TRAINED_MODULES: [&str; 4] = ["to_q", "to_k", "to_v", "to_out.0"];

/// The trainable factors of an avatar's LoRA, as one module for the optimiser.
#[derive(Module, Debug)]
pub struct LoraWeights {
    pub layers: Vec<LowRankPair>,
}

/// A UNet LoRA being trained: the factors and the layers they adapt.
#[derive(Debug)]
pub struct TrainableLora {
    pub weights: LoraWeights,
    layers: Vec<AdaptableLayer>,
    pub rank: usize,
    pub alpha: f64,
}

impl TrainableLora {
    /// A fresh LoRA of `rank` on [`TRAINED_MODULES`], initialised as peft does (`down` from
    /// Kaiming-uniform, `up` zero: the model is unchanged at the start), alpha = rank.
    pub fn new(unet: &UNet2DConditionModel, rank: usize, seed: u64, device: &Device) -> Self {
        let layers = AdaptableLayers::of_unet(unet).matching(&TRAINED_MODULES);
        let mut rng = StdRng::seed_from_u64(seed ^ 0x10_4a);
        let weights = LoraWeights {
            layers: layers
                .iter()
                .map(|layer| {
                    let (out, width) = (
                        layer.torch_shape[0],
                        layer.torch_shape[1..].iter().product::<usize>(),
                    );
                    // peft: kaiming_uniform_(a=√5) on `[rank, in]`, i.e. U(−1/√in, 1/√in).
                    let bound = 1.0 / (width as f64).sqrt();
                    let down: Vec<f32> = (0..rank * width)
                        .map(|_| rng.random_range(-bound..bound) as f32)
                        .collect();
                    pair(
                        Factor {
                            shape: vec![rank, width],
                            values: down,
                        },
                        Factor {
                            shape: vec![out, rank],
                            values: vec![0.0; out * rank],
                        },
                        1.0,
                        device,
                    )
                })
                .collect(),
        };
        TrainableLora {
            weights,
            layers,
            rank,
            alpha: rank as f64,
        }
    }

    /// A LoRA to continue training from `file` (a checkpoint or a diffusers file this engine
    /// wrote): every layer of [`TRAINED_MODULES`] must be in it, with one rank.
    pub fn from_file(
        unet: &UNet2DConditionModel,
        file: &LoraFile,
        device: &Device,
    ) -> Result<Self> {
        let error = |problem: String| EngineError::Lora {
            path: file.path.clone(),
            problem,
        };
        let layers = AdaptableLayers::of_unet(unet).matching(&TRAINED_MODULES);
        let by_module: HashMap<&str, &FileLayer> = file
            .layers
            .iter()
            .filter_map(|layer| match &layer.name {
                LayerName::Dotted(module) if layer.component == Component::Unet => {
                    Some((module.as_str(), layer))
                }
                _ => None,
            })
            .collect();
        if by_module.len() != file.layers.len() || by_module.len() != layers.len() {
            return Err(error(format!(
                "does not hold exactly the {} UNet attention layers an avatar trains",
                layers.len()
            )));
        }
        let mut rank = None;
        let mut alpha = None;
        let mut pairs = Vec::new();
        for layer in &layers {
            let found = by_module
                .get(layer.module.as_str())
                .ok_or_else(|| error(format!("has no factors for `{}`", layer.module)))?;
            let (down, up) = (
                found.down.clone().expect("checked"),
                found.up.clone().expect("checked"),
            );
            let width: usize = layer.torch_shape[1..].iter().product();
            if down.shape[1..].iter().product::<usize>() != width
                || up.shape[0] != layer.torch_shape[0]
            {
                return Err(error(format!(
                    "tensor `{}` does not fit this model's layer {:?}",
                    found.key, layer.torch_shape
                )));
            }
            let this_rank = down.shape[0];
            if *rank.get_or_insert(this_rank) != this_rank {
                return Err(error("mixes ranks".into()));
            }
            let this_alpha = found.alpha.unwrap_or(this_rank as f64);
            alpha.get_or_insert(this_alpha);
            let down = Factor {
                shape: vec![this_rank, width],
                values: down.values,
            };
            let up = Factor {
                shape: vec![up.shape[0], this_rank],
                values: up.values,
            };
            pairs.push(pair(down, up, 1.0, device));
        }
        let rank = rank.unwrap_or(0);
        let alpha = alpha.unwrap_or(rank as f64);
        let mut lora = TrainableLora {
            weights: LoraWeights { layers: pairs },
            layers,
            rank,
            alpha,
        };
        lora.set_scale();
        Ok(lora)
    }

    fn set_scale(&mut self) {
        let scale = alpha_over_rank(self.alpha, self.rank, false);
        for layer in &mut self.weights.layers {
            layer.scale = scale;
        }
    }

    /// `unet` with the factors live on its weights: the loss's gradient reaches them.
    pub fn attach(&self, unet: UNet2DConditionModel) -> UNet2DConditionModel {
        attach(unet, self.updates(), false)
    }

    /// `unet` with the factors merged in, out of any gradient graph: for evaluation and previews.
    pub fn merged(&self, unet: UNet2DConditionModel) -> UNet2DConditionModel {
        attach(unet, self.updates(), true)
    }

    fn updates(&self) -> HashMap<String, LowRankUpdates> {
        let scale = alpha_over_rank(self.alpha, self.rank, false);
        self.layers
            .iter()
            .zip(&self.weights.layers)
            .map(|(layer, pair)| {
                (
                    layer.param_path.clone(),
                    LowRankUpdates {
                        pairs: vec![LowRankPair {
                            down: pair.down.clone(),
                            up: pair.up.clone(),
                            scale,
                        }],
                        // `attach` sets it: live or merged.
                        in_stored_type: false,
                    },
                )
            })
            .collect()
    }

    /// Replaces the factors (after an optimiser step).
    pub fn replace_weights(&mut self, weights: LoraWeights) {
        self.weights = weights;
        self.set_scale();
    }

    /// The factors as diffusers' `pytorch_lora_weights.safetensors` (peft names,
    /// `unet.<module>.lora_A.weight` / `lora_B.weight`, f32; alpha = rank, which is what
    /// `load_lora_weights` assumes when a file gives none), with `metadata` beside them.
    pub async fn file(&self, metadata: HashMap<String, String>) -> Result<Vec<u8>> {
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (layer, pair) in self.layers.iter().zip(&self.weights.layers) {
            let mut down_shape = vec![self.rank];
            down_shape.extend(&layer.torch_shape[1..]);
            let mut up_shape = vec![layer.torch_shape[0], self.rank];
            if layer.torch_shape.len() == 4 {
                up_shape.extend([1, 1]);
            }
            for (suffix, shape, tensor) in [
                ("lora_A", down_shape, pair.down.val()),
                ("lora_B", up_shape, pair.up.val()),
            ] {
                let values = read_values(tensor).await?;
                tensors.push((
                    format!("unet.{}.{suffix}.weight", layer.module),
                    shape,
                    values
                        .iter()
                        .flat_map(|value| value.to_le_bytes())
                        .collect(),
                ));
            }
        }
        let views = tensors
            .iter()
            .map(|(name, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|view| (name.clone(), view))
                    .map_err(|error| EngineError::Usage(error.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut metadata = metadata;
        metadata.insert("format".into(), "diffusers lora".into());
        metadata.insert("rank".into(), self.rank.to_string());
        metadata.insert("alpha".into(), self.alpha.to_string());
        safetensors::serialize(views, Some(metadata))
            .map_err(|error| EngineError::Usage(error.to_string()))
    }

    /// diffusers' names of the adapted layers, in the order of `weights.layers`.
    pub fn modules(&self) -> Vec<&str> {
        self.layers
            .iter()
            .map(|layer| layer.module.as_str())
            .collect()
    }

    /// How many values the factors hold.
    pub fn parameter_count(&self) -> usize {
        self.weights.num_params()
    }
}

fn pair(down: Factor, up: Factor, scale: f64, device: &Device) -> LowRankPair {
    let tensor = |factor: Factor| {
        let shape = [factor.shape[0], factor.shape[1]];
        Param::from_tensor(
            Tensor::<2>::from_data(TensorData::new(factor.values, shape), (device, DType::F32))
                .require_grad(),
        )
    };
    LowRankPair {
        down: tensor(down),
        up: tensor(up),
        scale,
    }
}
