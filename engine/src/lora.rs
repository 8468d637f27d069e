//! LoRA: low-rank adapters (Hu et al. 2021, arXiv 2106.09685) on a model's weights, read from the
//! files people share and trained with an avatar (pivotal tuning, see `avatar.rs`).
//!
//! An adapted layer's weight is `W + s · up·down`, with `down` `[rank, in]` and `up`
//! `[out, rank]` (a convolution's `down` is `[rank, in, kh, kw]` and its `up` `[out, rank, 1, 1]`),
//! and `s = scale · alpha / rank` as peft and diffusers define it (`alpha / √rank` for rsLoRA),
//! `scale` being the parent's strength (`--lora-scale`). Several files may adapt one layer: their
//! terms add, each with its own `s`.
//!
//! The adapters ride on burn's parameter reparameterization: the weight parameter keeps its
//! loaded value as the base and materialises `base + Σ s·up·down` when read, so no layer code
//! changes. For generation the sum is merged once into the weights ([`Module::materialize`]), so
//! a step costs what it costs without LoRA; for training the factors stay live parameters and the
//! gradient reaches them through the same sum. The base is never modified, so removing or
//! re-scaling a LoRA is exact, in f16 too.
//!
//! File formats (every key must be understood, or the file is refused naming the key):
//! - diffusers / peft: `unet.<module>.lora_A.weight` / `lora_B.weight` (the `.default` adapter
//!   name allowed), the older `unet.<module>.lora.down/up.weight`,
//!   `unet.<…>.processor.to_q_lora.down.weight` (attention processors) and
//!   `text_encoder.<module>.lora_linear_layer.down/up.weight`; alpha from `<module>.alpha`
//!   tensors or diffusers' `lora_adapter_metadata` (`lora_alpha`, `alpha_pattern`,
//!   `use_rslora`), else alpha = rank;
//! - kohya / A1111: `lora_unet_<module with _>.lora_down.weight` / `lora_up.weight` / `alpha`,
//!   `lora_te_…` for the text encoder. kohya's names replace every `.` by `_`, so they are resolved
//!   against the model's own layer names.
//!
//! LyCORIS variants (LoHa, LoKr, DoRA, Tucker `lora_mid`) and SDXL's second text encoder are
//! recognised and refused with what they are.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param, Reparameterization, Reparameterizer};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use safetensors::SafeTensors;
use serde_json::Value;

use crate::clip::ClipTextModel;
use crate::error::{EngineError, Result};
use crate::unet_2d::UNet2DConditionModel;
use crate::weights::float_values;

/// The model a layer of a LoRA file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    Unet,
    TextEncoder,
}

impl Component {
    /// diffusers' key prefix.
    fn prefix(self) -> &'static str {
        match self {
            Component::Unet => "unet",
            Component::TextEncoder => "text_encoder",
        }
    }
}

/// How a file names a layer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum LayerName {
    /// diffusers' module path, e.g. `mid_block.attentions.0.transformer_blocks.0.attn1.to_q`.
    Dotted(String),
    /// kohya's, e.g. `mid_block_attentions_0_transformer_blocks_0_attn1_to_q`.
    Underscored(String),
}

/// A tensor's shape and values (f32), as read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// One adapted layer of a file.
#[derive(Clone, Debug)]
struct FileLayer {
    component: Component,
    name: LayerName,
    /// A key of the layer, to name it in errors.
    key: String,
    down: Option<Factor>,
    up: Option<Factor>,
    alpha: Option<f64>,
}

/// A LoRA file, parsed and checked on its own; [`LoraFile::adapters`] checks it against a model.
#[derive(Clone, Debug)]
pub struct LoraFile {
    pub path: PathBuf,
    layers: Vec<FileLayer>,
    /// rsLoRA scales by `alpha / √rank` instead of `alpha / rank`.
    rank_stabilized: bool,
}

/// The scale of `alpha` over `rank`, as peft computes it.
fn alpha_over_rank(alpha: f64, rank: usize, rank_stabilized: bool) -> f64 {
    if rank_stabilized {
        alpha / (rank as f64).sqrt()
    } else {
        alpha / rank as f64
    }
}

/// The suffixes of diffusers' and peft's names: factor `true` is `down`, `false` `up`.
const DOTTED_SUFFIXES: [(&str, bool); 8] = [
    (".lora_A.weight", true),
    (".lora_B.weight", false),
    (".lora_A.default.weight", true),
    (".lora_B.default.weight", false),
    (".lora.down.weight", true),
    (".lora.up.weight", false),
    (".lora_linear_layer.down.weight", true),
    (".lora_linear_layer.up.weight", false),
];

/// Key fragments of adapter kinds that are not plain LoRA, with what to call them.
const OTHER_KINDS: [(&str, &str); 7] = [
    // Matched against the start of a key's segments (`diff` whole: `diffusion_model` is not one).
    ("hada_", "a LoHa (LyCORIS) adapter"),
    ("lokr_", "a LoKr (LyCORIS) adapter"),
    ("lora_mid", "a LoCon with a Tucker middle factor (LyCORIS)"),
    ("dora_scale", "a DoRA adapter"),
    ("lora_magnitude_vector", "a DoRA adapter"),
    ("diff", "a full weight difference (LyCORIS `diff`)"),
    ("ia3", "an IA³ adapter"),
];

/// A parent-facing reason: the reader's own words mean nothing to a parent.
const NOT_SAFETENSORS: &str =
    "is not a safetensors file: it is cut short, damaged, or another kind of file";

impl LoraFile {
    /// Reads a LoRA safetensors file; `path` names it in errors.
    pub fn from_safetensors(bytes: &[u8], path: &Path) -> Result<Self> {
        let error = |problem: String| EngineError::Lora {
            path: path.to_owned(),
            problem,
        };
        if bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80) {
            return Err(error(
                "is a PyTorch .pt/.ckpt file; unpickling it could run code, so only safetensors LoRA files are read"
                    .into(),
            ));
        }
        let tensors = SafeTensors::deserialize(bytes).map_err(|_| error(NOT_SAFETENSORS.into()))?;
        let (_, header) =
            SafeTensors::read_metadata(bytes).map_err(|_| error(NOT_SAFETENSORS.into()))?;
        let adapter_metadata = AdapterMetadata::read(header.metadata().as_ref(), &error)?;

        let mut layers: BTreeMap<(Component, LayerName), FileLayer> = BTreeMap::new();
        let mut names: Vec<String> = tensors.names().into_iter().map(str::to_owned).collect();
        names.sort();
        for key in names {
            let (component, name, part) = classify(&key).map_err(error)?;
            let tensor = tensors.tensor(&key).expect("a listed tensor");
            let values = float_values(tensor.dtype(), tensor.data()).ok_or_else(|| {
                error(format!(
                    "tensor `{key}` holds {:?} values where a LoRA needs floats",
                    tensor.dtype()
                ))
            })?;
            if let Some(bad) = values.iter().find(|value| !value.is_finite()) {
                return Err(error(format!(
                    "holds {bad} where its numbers should be (in `{key}`): the file is damaged"
                )));
            }
            let layer = layers
                .entry((component, name.clone()))
                .or_insert_with(|| FileLayer {
                    component,
                    name,
                    key: key.clone(),
                    down: None,
                    up: None,
                    alpha: None,
                });
            let factor = Factor {
                shape: tensor.shape().to_vec(),
                values,
            };
            match part {
                Part::Down => {
                    // Errors name the down factor, the layer's first weight.
                    layer.key = key.clone();
                    layer.down = Some(factor);
                }
                Part::Up => layer.up = Some(factor),
                Part::Alpha => {
                    if factor.values.len() != 1 {
                        return Err(error(format!("tensor `{key}` should hold one alpha value")));
                    }
                    layer.alpha = Some(f64::from(factor.values[0]));
                }
            }
        }
        if layers.is_empty() {
            return Err(error("holds no LoRA layers".into()));
        }
        let mut rank_stabilized = false;
        for layer in layers.values_mut() {
            let (down, up) = match (&layer.down, &layer.up) {
                (Some(down), Some(up)) => (down, up),
                _ => {
                    return Err(error(format!(
                        "layer of `{}` lacks its {} factor",
                        layer.key,
                        if layer.down.is_none() { "down" } else { "up" }
                    )));
                }
            };
            let rank = down.shape.first().copied().unwrap_or(0);
            let conv_up = up.shape.len() == 4 && up.shape[2] == 1 && up.shape[3] == 1;
            let shapes_fit = rank > 0
                && matches!(down.shape.len(), 2 | 4)
                && (up.shape.len() == 2 || conv_up)
                && up.shape[1] == rank
                && down.shape.len() == up.shape.len();
            if !shapes_fit {
                return Err(error(format!(
                    "layer of `{}` has factors of shapes {:?} and {:?}, which do not make a low-rank pair",
                    layer.key, down.shape, up.shape
                )));
            }
            if layer.alpha.is_none()
                && let LayerName::Dotted(module) = &layer.name
            {
                layer.alpha = adapter_metadata.alpha(layer.component, module);
            }
            rank_stabilized |= adapter_metadata.rank_stabilized(layer.component);
        }
        Ok(LoraFile {
            path: path.to_owned(),
            layers: layers.into_values().collect(),
            rank_stabilized,
        })
    }

    /// How many layers the file adapts.
    pub fn layer_count(&self) -> usize {
        self.layers.len()
    }

    /// Whether any layer belongs to `component`.
    pub fn adapts(&self, component: Component) -> bool {
        self.layers.iter().any(|layer| layer.component == component)
    }
}

enum Part {
    Down,
    Up,
    Alpha,
}

/// What a key is: whose layer, which layer, which part. The error names the key.
fn classify(key: &str) -> std::result::Result<(Component, LayerName, Part), String> {
    let not_understood = |why: &str| format!("tensor `{key}` is not understood: {why}");
    if let Some((_, kind)) = OTHER_KINDS.iter().find(|(fragment, _)| {
        key.split('.').any(|part| match *fragment {
            "diff" => part == "diff",
            fragment => part.starts_with(fragment),
        })
    }) {
        return Err(not_understood(&format!(
            "it belongs to {kind}, which this app does not read (only plain LoRA)"
        )));
    }
    if key.starts_with("lora_te1_")
        || key.starts_with("lora_te2_")
        || key.starts_with("text_encoder_2.")
    {
        return Err(not_understood(
            "it is for SDXL's second text encoder; this LoRA was made for SDXL, not for this model",
        ));
    }
    for (prefix, component) in [
        ("lora_unet_", Component::Unet),
        ("lora_te_", Component::TextEncoder),
    ] {
        if let Some(rest) = key.strip_prefix(prefix) {
            let (module, suffix) = rest.split_once('.').ok_or_else(|| {
                not_understood("a kohya key needs a `.lora_down.weight`-style suffix")
            })?;
            let part = match suffix {
                "lora_down.weight" => Part::Down,
                "lora_up.weight" => Part::Up,
                "alpha" => Part::Alpha,
                _ => return Err(not_understood("unknown kohya suffix")),
            };
            return Ok((component, LayerName::Underscored(module.to_owned()), part));
        }
    }
    for component in [Component::Unet, Component::TextEncoder] {
        let Some(rest) = key
            .strip_prefix(component.prefix())
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            continue;
        };
        if let Some(module) = rest.strip_suffix(".alpha") {
            return Ok((component, LayerName::Dotted(module.to_owned()), Part::Alpha));
        }
        for (suffix, down) in DOTTED_SUFFIXES {
            if let Some(module) = rest.strip_suffix(suffix) {
                let part = if down { Part::Down } else { Part::Up };
                return Ok((component, LayerName::Dotted(module.to_owned()), part));
            }
        }
        // diffusers' attention-processor layout: `attn1.processor.to_q_lora.down.weight`.
        if let Some((attention, processor)) = rest.split_once(".processor.") {
            for (name, module) in [
                ("to_q_lora", "to_q"),
                ("to_k_lora", "to_k"),
                ("to_v_lora", "to_v"),
                ("to_out_lora", "to_out.0"),
            ] {
                for (suffix, part) in [(".down.weight", true), (".up.weight", false)] {
                    if processor == format!("{name}{suffix}") {
                        let part = if part { Part::Down } else { Part::Up };
                        return Ok((
                            component,
                            LayerName::Dotted(format!("{attention}.{module}")),
                            part,
                        ));
                    }
                }
            }
        }
        return Err(not_understood("unknown LoRA suffix"));
    }
    Err(not_understood(
        "neither a diffusers (`unet.`, `text_encoder.`) nor a kohya (`lora_unet_`, `lora_te_`) LoRA key",
    ))
}

/// diffusers' `lora_adapter_metadata`: peft's `LoraConfig` per component, keys prefixed
/// `unet.` / `text_encoder.`.
#[derive(Default)]
struct AdapterMetadata {
    config: HashMap<String, Value>,
}

impl AdapterMetadata {
    fn read(
        metadata: Option<&HashMap<String, String>>,
        error: &impl Fn(String) -> EngineError,
    ) -> Result<Self> {
        let Some(raw) = metadata.and_then(|metadata| metadata.get("lora_adapter_metadata")) else {
            return Ok(AdapterMetadata::default());
        };
        let config: HashMap<String, Value> = serde_json::from_str(raw)
            .map_err(|cause| error(format!("has unreadable `lora_adapter_metadata` ({cause})")))?;
        for component in [Component::Unet, Component::TextEncoder] {
            if config
                .get(&format!("{}.use_dora", component.prefix()))
                .and_then(Value::as_bool)
                == Some(true)
            {
                return Err(error(
                    "is a DoRA adapter (`use_dora`), which this app does not read (only plain LoRA)"
                        .into(),
                ));
            }
        }
        Ok(AdapterMetadata { config })
    }

    fn get(&self, component: Component, field: &str) -> Option<&Value> {
        self.config.get(&format!("{}.{field}", component.prefix()))
    }

    /// peft's alpha for `module`: the longest `alpha_pattern` entry the module's name ends
    /// with, else `lora_alpha`.
    fn alpha(&self, component: Component, module: &str) -> Option<f64> {
        let pattern = self
            .get(component, "alpha_pattern")
            .and_then(Value::as_object)
            .and_then(|patterns| {
                patterns
                    .iter()
                    .filter(|(pattern, _)| {
                        module == pattern.as_str() || module.ends_with(&format!(".{pattern}"))
                    })
                    .max_by_key(|(pattern, _)| pattern.len())
                    .and_then(|(_, alpha)| alpha.as_f64())
            });
        pattern.or_else(|| self.get(component, "lora_alpha").and_then(Value::as_f64))
    }

    fn rank_stabilized(&self, component: Component) -> bool {
        self.get(component, "use_rslora").and_then(Value::as_bool) == Some(true)
    }
}

/// A layer of a model that a LoRA can adapt: a linear layer's or a convolution's weight.
#[derive(Clone, Debug)]
pub struct AdaptableLayer {
    /// The weight's path in the burn module (enum variants included), as burn's mappers see it.
    param_path: String,
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
        let dtype = base.dtype();
        // burn's linear weight is `[in, out]`, PyTorch's (and the delta's) `[out, in]`; a
        // convolution's is `[out, in, kh, kw]` in both.
        let delta: Tensor<D> = if D == 2 {
            delta.transpose().reshape(base.shape())
        } else {
            delta.reshape(base.shape())
        };
        // The sum is formed in f32 and joins the weight in its own type (f16 on most GPUs).
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
fn attach<M: Module>(module: M, mut updates: HashMap<String, LowRankUpdates>, merge: bool) -> M {
    if updates.is_empty() {
        return module;
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
                .or_insert_with(|| LowRankUpdates { pairs: Vec::new() })
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
                let values = crate::avatar::values(tensor).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tensors: &[(&str, Vec<usize>)], metadata: Option<HashMap<String, String>>) -> Vec<u8> {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(name, shape)| {
                let count: usize = shape.iter().product();
                let bytes = (0..count)
                    .flat_map(|index| (index as f32 * 0.01).to_le_bytes())
                    .collect();
                (name.to_string(), shape.clone(), bytes)
            })
            .collect();
        let views: Vec<_> = data
            .iter()
            .map(|(name, shape, bytes)| {
                (
                    name.clone(),
                    safetensors::tensor::TensorView::new(
                        safetensors::Dtype::F32,
                        shape.clone(),
                        bytes,
                    )
                    .unwrap(),
                )
            })
            .collect();
        safetensors::serialize(views, metadata).unwrap()
    }

    fn parse(bytes: &[u8]) -> Result<LoraFile> {
        LoraFile::from_safetensors(bytes, Path::new("style.safetensors"))
    }

    #[test]
    fn every_naming_is_understood() {
        let bytes = file(
            &[
                ("unet.a.attn1.to_q.lora_A.weight", vec![2, 8]),
                ("unet.a.attn1.to_q.lora_B.weight", vec![8, 2]),
                ("unet.a.attn1.to_k.lora.down.weight", vec![2, 8]),
                ("unet.a.attn1.to_k.lora.up.weight", vec![8, 2]),
                ("unet.a.attn1.processor.to_out_lora.down.weight", vec![2, 8]),
                ("unet.a.attn1.processor.to_out_lora.up.weight", vec![8, 2]),
                (
                    "text_encoder.text_model.q_proj.lora_linear_layer.down.weight",
                    vec![2, 8],
                ),
                (
                    "text_encoder.text_model.q_proj.lora_linear_layer.up.weight",
                    vec![8, 2],
                ),
                ("lora_unet_a_proj_in.lora_down.weight", vec![2, 8, 1, 1]),
                ("lora_unet_a_proj_in.lora_up.weight", vec![8, 2, 1, 1]),
                ("lora_unet_a_proj_in.alpha", vec![]),
            ],
            None,
        );
        let lora = parse(&bytes).unwrap();
        assert_eq!(lora.layer_count(), 5);
        assert!(lora.adapts(Component::TextEncoder));
        let names: Vec<_> = lora.layers.iter().map(|layer| layer.name.clone()).collect();
        assert!(names.contains(&LayerName::Dotted("a.attn1.to_out.0".into())));
        assert!(names.contains(&LayerName::Underscored("a_proj_in".into())));
    }

    #[test]
    fn unknown_and_unsupported_keys_are_named() {
        for (key, words) in [
            ("unet.a.to_q.lora_X.weight", "unknown LoRA suffix"),
            ("lora_unet_a_to_q.hada_w1_a", "LoHa"),
            ("lora_unet_a_to_q.dora_scale", "DoRA"),
            ("lora_te2_text_model_q_proj.lora_down.weight", "SDXL"),
            ("model.diffusion_model.weight", "neither a diffusers"),
        ] {
            let error = parse(&file(&[(key, vec![2, 8])], None))
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{error}");
            assert!(error.contains(words), "{error}");
        }
        let half = file(&[("unet.a.to_q.lora_A.weight", vec![2, 8])], None);
        assert!(
            parse(&half)
                .unwrap_err()
                .to_string()
                .contains("lacks its up factor")
        );
        let wrong = file(
            &[
                ("unet.a.to_q.lora_A.weight", vec![2, 8]),
                ("unet.a.to_q.lora_B.weight", vec![8, 3]),
            ],
            None,
        );
        assert!(
            parse(&wrong)
                .unwrap_err()
                .to_string()
                .contains("low-rank pair")
        );
        assert!(
            parse(b"\x80\x02pickle")
                .unwrap_err()
                .to_string()
                .contains(".pt")
        );
        assert!(
            parse(&file(&[], None))
                .unwrap_err()
                .to_string()
                .contains("no LoRA layers")
        );
    }

    #[test]
    fn alpha_comes_from_tensors_or_diffusers_metadata() {
        let metadata = HashMap::from([(
            "lora_adapter_metadata".to_owned(),
            r#"{"unet.lora_alpha": 8, "unet.alpha_pattern": {"attn2.to_q": 2}}"#.to_owned(),
        )]);
        let bytes = file(
            &[
                ("unet.b.attn1.to_q.lora_A.weight", vec![4, 8]),
                ("unet.b.attn1.to_q.lora_B.weight", vec![8, 4]),
                ("unet.b.attn2.to_q.lora_A.weight", vec![4, 8]),
                ("unet.b.attn2.to_q.lora_B.weight", vec![8, 4]),
            ],
            Some(metadata),
        );
        let lora = parse(&bytes).unwrap();
        let alphas: Vec<_> = lora.layers.iter().map(|layer| layer.alpha).collect();
        assert_eq!(alphas, [Some(8.0), Some(2.0)]);
        let dora = HashMap::from([(
            "lora_adapter_metadata".to_owned(),
            r#"{"unet.use_dora": true}"#.to_owned(),
        )]);
        let bytes = file(
            &[
                ("unet.b.to_q.lora_A.weight", vec![4, 8]),
                ("unet.b.to_q.lora_B.weight", vec![8, 4]),
            ],
            Some(dora),
        );
        assert!(parse(&bytes).unwrap_err().to_string().contains("DoRA"));
    }
}
