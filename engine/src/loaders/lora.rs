//! LoRA files: low-rank adapters (Hu et al. 2021, arXiv 2106.09685) as people share them, read
//! and checked on their own. How their terms reach a model's weights is `models::lora`; the
//! avatar's own LoRA, trained on the device, is `training::lora`.
//!
//! An adapted layer's weight is `W + s · up·down`, with `down` `[rank, in]` and `up`
//! `[out, rank]` (a convolution's `down` is `[rank, in, kh, kw]` and its `up` `[out, rank, 1, 1]`),
//! and `s = scale · alpha / rank` as peft and diffusers define it (`alpha / √rank` for rsLoRA),
//! `scale` being the parent's strength (`--lora-scale`). Several files may adapt one layer: their
//! terms add, each with its own `s`.
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

use safetensors::SafeTensors;
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::loaders::weights::float_values;

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
pub(crate) enum LayerName {
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
pub(crate) struct FileLayer {
    pub(crate) component: Component,
    pub(crate) name: LayerName,
    /// A key of the layer, to name it in errors.
    pub(crate) key: String,
    pub(crate) down: Option<Factor>,
    pub(crate) up: Option<Factor>,
    pub(crate) alpha: Option<f64>,
}

/// A LoRA file, parsed and checked on its own; `models::lora::adapt` checks it against a model.
#[derive(Clone, Debug)]
pub struct LoraFile {
    pub path: PathBuf,
    pub(crate) layers: Vec<FileLayer>,
    /// rsLoRA scales by `alpha / √rank` instead of `alpha / rank`.
    pub(crate) rank_stabilized: bool,
}

/// The scale of `alpha` over `rank`, as peft computes it.
pub(crate) fn alpha_over_rank(alpha: f64, rank: usize, rank_stabilized: bool) -> f64 {
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
