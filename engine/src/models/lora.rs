//! LoRA on a model's layers: which layers a LoRA can adapt (every `Linear` and `Conv2d` weight,
//! by diffusers' module name and by kohya's), and the low-rank terms on them.
//!
//! The adapters ride on burn's parameter reparameterization: the weight parameter keeps its
//! loaded value as the base and materialises `base + Σ s·up·down` when read, so no layer code
//! changes. For generation the sum is merged once into the weights ([`Module::materialize`]), so
//! a step costs what it costs without LoRA; for training (`training::lora`) the factors stay live
//! parameters and the gradient reaches them through the same sum. The base is never modified, so
//! removing or re-scaling a LoRA is exact, in f16 too. The files are read in `loaders::lora`.

use std::collections::HashMap;

use burn::module::{Module, ModuleVisitor, Param, Reparameterization, Reparameterizer};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::error::{EngineError, Result};
use crate::loaders::lora::{Component, Factor, LayerName, LoraFile, alpha_over_rank};
use crate::models::clip::ClipTextModel;
use crate::models::held_weights::to_compute_dtype;
use crate::models::unet_2d::UNet2DConditionModel;

/// A layer of a model that a LoRA can adapt: a linear layer's or a convolution's weight.
#[derive(Clone, Debug)]
pub struct AdaptableLayer {
    /// The weight's path in the burn module (enum variants included), as burn's mappers see it.
    pub(crate) param_path: String,
    /// diffusers' module name.
    pub module: String,
    /// The weight's shape in PyTorch's layout: `[out, in]` or `[out, in, kh, kw]`.
    pub torch_shape: Vec<usize>,
}

/// The layers of a component that a LoRA can adapt, by diffusers module name and by kohya name.
pub struct AdaptableLayers {
    component: Component,
    by_module: HashMap<String, AdaptableLayer>,
    by_underscored: HashMap<String, String>,
}

impl AdaptableLayers {
    pub fn of_unet(unet: &UNet2DConditionModel) -> Self {
        // The loader's key remaps, undone (`unet_2d::UNET_KEY_REMAPS`); the module path is
        // then kept as a second name, which no file uses.
        Self::collect(unet, Component::Unet, |path| {
            path.replace(".ff.proj_in", ".ff.net.0.proj")
                .replace(".ff.proj_out", ".ff.net.2")
        })
    }

    pub fn of_text_encoder(text_encoder: &ClipTextModel) -> Self {
        Self::collect(text_encoder, Component::TextEncoder, |path| {
            format!("text_model.{path}")
        })
    }

    fn collect(
        module: &impl Module,
        component: Component,
        diffusers_name: impl Fn(&str) -> String,
    ) -> Self {
        let mut visitor = LayerVisitor::default();
        module.visit(&mut visitor);
        let mut by_module = HashMap::new();
        let mut by_underscored = HashMap::new();
        for (param_path, checkpoint_path, torch_shape) in visitor.layers {
            let module = diffusers_name(&checkpoint_path);
            by_underscored.insert(module.replace('.', "_"), module.clone());
            if module != checkpoint_path {
                // transformers 5 names CLIP's layers without `text_model.` (diffusers writes
                // `text_encoder.encoder.layers.…` now); older files and kohya's have it.
                by_underscored.insert(checkpoint_path.replace('.', "_"), module.clone());
                by_module.insert(
                    checkpoint_path.clone(),
                    AdaptableLayer {
                        param_path: param_path.clone(),
                        module: module.clone(),
                        torch_shape: torch_shape.clone(),
                    },
                );
            }
            by_module.insert(
                module.clone(),
                AdaptableLayer {
                    param_path,
                    module,
                    torch_shape,
                },
            );
        }
        AdaptableLayers {
            component,
            by_module,
            by_underscored,
        }
    }

    fn find(&self, name: &LayerName) -> Option<&AdaptableLayer> {
        let module = match name {
            LayerName::Dotted(module) => module,
            LayerName::Underscored(name) => self.by_underscored.get(name)?,
        };
        self.by_module.get(module)
    }

    /// The layers whose diffusers module name ends with one of `suffixes`, in a stable order.
    pub fn matching(&self, suffixes: &[&str]) -> Vec<AdaptableLayer> {
        let mut layers: Vec<AdaptableLayer> = self
            .by_module
            .values()
            .filter(|layer| {
                suffixes
                    .iter()
                    .any(|suffix| layer.module.ends_with(&format!(".{suffix}")))
            })
            .cloned()
            .collect();
        layers.sort_by(|a, b| a.module.cmp(&b.module));
        layers
    }
}

/// Collects the weights of every `Linear` and `Conv2d`: (mapper path, checkpoint path without
/// `.weight`, PyTorch shape).
#[derive(Default)]
struct LayerVisitor {
    /// (name, container type) of each module entered.
    stack: Vec<(String, String)>,
    layers: Vec<(String, String, Vec<usize>)>,
}

impl ModuleVisitor for LayerVisitor {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack
            .push((name.to_owned(), container_type.to_owned()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        // A struct's fields are entered with the struct's own type: `weight` of a `Linear`.
        let Some((name, owner)) = self.stack.last() else {
            return;
        };
        let linear = owner == "Struct:Linear" && D == 2;
        let conv = owner == "Struct:Conv2d" && D == 4;
        if name != "weight" || !(linear || conv) {
            return;
        }
        let param_path = self
            .stack
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let checkpoint_path = self.stack[..self.stack.len() - 1]
            .iter()
            .filter(|(_, kind)| !kind.starts_with("Enum:"))
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        let mut shape = param.lazy_shape().to_vec();
        if linear {
            // burn keeps a linear weight as `[in, out]`.
            shape.reverse();
        }
        self.layers.push((param_path, checkpoint_path, shape));
    }
}

/// One low-rank term `scale · up·down`, factors in f32, `down` `[rank, in·kh·kw]`, `up`
/// `[out, rank]`.
#[derive(Module, Debug)]
pub struct LowRankPair {
    pub down: Param<Tensor<2>>,
    pub up: Param<Tensor<2>>,
    pub scale: f64,
}

impl LowRankPair {
    /// `scale · up·down`, `[out, in·kh·kw]`, in f32.
    fn delta(&self) -> Tensor<2> {
        self.up.val().matmul(self.down.val()) * self.scale
    }
}

/// The terms on one weight: the reparameterization burn applies when the weight is read.
#[derive(Module, Debug)]
pub struct LowRankUpdates {
    pub pairs: Vec<LowRankPair>,
    /// Whether the sum is formed in the weight's stored type, to be merged into it (generation);
    /// otherwise in the device's compute type (training, where a weight held in f16 on the CPU
    /// is widened to f32 first: `models::held_weights`).
    pub in_stored_type: bool,
}

impl Reparameterization for LowRankUpdates {
    const NAME: &'static str = "lora";

    fn apply<const D: usize>(&self, base: Tensor<D>) -> Tensor<D> {
        let delta = self
            .pairs
            .iter()
            .map(LowRankPair::delta)
            .reduce(|sum, delta| sum + delta)
            .expect("at least one pair");
        let base = if self.in_stored_type {
            base
        } else {
            to_compute_dtype(base)
        };
        let dtype = base.dtype();
        // burn's linear weight is `[in, out]`, PyTorch's (and the delta's) `[out, in]`; a
        // convolution's is `[out, in, kh, kw]` in both.
        let delta: Tensor<D> = if D == 2 {
            delta.transpose().reshape(base.shape())
        } else {
            delta.reshape(base.shape())
        };
        // The sum is formed in f32 and joins the weight in its type (f16 on most GPUs).
        base + delta.cast(dtype)
    }
}

/// Attaches the updates (keyed by mapper path) to a module's weights, taking each it uses.
struct Attach<'a>(&'a mut HashMap<String, LowRankUpdates>);

impl Reparameterizer for Attach<'_> {
    type Reparam = LowRankUpdates;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LowRankUpdates>) {
        let updates = self.0.remove(path);
        (param, updates)
    }
}

/// Adds `updates` to `module`'s weights. `merge` folds them in for generation (and frees the
/// factors); otherwise they stay live, for training.
pub(crate) fn attach<M: Module>(
    module: M,
    mut updates: HashMap<String, LowRankUpdates>,
    merge: bool,
) -> M {
    if updates.is_empty() {
        return module;
    }
    for terms in updates.values_mut() {
        terms.in_stored_type = merge;
    }
    let module = module.apply_reparameterization(Attach(&mut updates));
    debug_assert!(updates.is_empty(), "every adapted weight was found");
    if merge {
        // Merged weights keep no gradient, on an autodiff device too (evaluation, previews).
        module.materialize().no_grad()
    } else {
        module
    }
}

/// A LoRA file with the strength it is applied at.
#[derive(Clone, Debug)]
pub struct ScaledLora {
    pub file: LoraFile,
    pub scale: f64,
}

/// The terms of `loras` for `layers`' component, checked against its layers, on `device`.
fn updates_for(
    layers: &AdaptableLayers,
    loras: &[ScaledLora],
    device: &Device,
) -> Result<HashMap<String, LowRankUpdates>> {
    let mut updates: HashMap<String, LowRankUpdates> = HashMap::new();
    for ScaledLora { file, scale } in loras {
        let error = |problem: String| EngineError::Lora {
            path: file.path.clone(),
            problem,
        };
        for layer in file
            .layers
            .iter()
            .filter(|layer| layer.component == layers.component)
        {
            let target = layers.find(&layer.name).ok_or_else(|| {
                error(format!(
                    "tensor `{}` adapts a layer this model does not have: the LoRA was made for a different model",
                    layer.key
                ))
            })?;
            let (down, up) = (
                layer.down.as_ref().expect("checked"),
                layer.up.as_ref().expect("checked"),
            );
            let rank = down.shape[0];
            let (out, inputs) = (target.torch_shape[0], &target.torch_shape[1..]);
            let down_fits = down.shape[1..] == *inputs;
            let up_fits = up.shape[0] == out;
            if !down_fits || !up_fits {
                return Err(error(format!(
                    "tensor `{}` has shapes {:?} / {:?}, but the layer it adapts is {:?}: the LoRA was made for a different model",
                    layer.key, down.shape, up.shape, target.torch_shape
                )));
            }
            let alpha = layer.alpha.unwrap_or(rank as f64);
            let width: usize = inputs.iter().product();
            let tensor = |factor: &Factor, shape: [usize; 2]| {
                Param::from_tensor(Tensor::<2>::from_data(
                    TensorData::new(factor.values.clone(), shape),
                    (device, DType::F32),
                ))
            };
            updates
                .entry(target.param_path.clone())
                .or_insert_with(|| LowRankUpdates {
                    pairs: Vec::new(),
                    in_stored_type: true,
                })
                .pairs
                .push(LowRankPair {
                    down: tensor(down, [rank, width]),
                    up: tensor(up, [out, rank]),
                    scale: scale * alpha_over_rank(alpha, rank, file.rank_stabilized),
                });
        }
    }
    Ok(updates)
}

/// `module` (whose adaptable layers are `layers`) with the terms of `loras` on its weights, or
/// `None` when no LoRA adapts it. Every layer of the files for this component must exist in the
/// model with its shape, or nothing is returned but the error. `merge` folds the terms into the
/// weights (generation: a step then costs what it costs without LoRA); otherwise they stay a side
/// path, recomputed whenever a weight is read. `module` itself is left as it was.
pub fn adapt<M: Module>(
    module: &M,
    layers: &AdaptableLayers,
    loras: &[ScaledLora],
    device: &Device,
    merge: bool,
) -> Result<Option<M>> {
    let updates = updates_for(layers, loras, device)?;
    Ok((!updates.is_empty()).then(|| attach(module.clone(), updates, merge)))
}
