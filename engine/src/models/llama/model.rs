//! transformers' `LlamaForCausalLM` / `Qwen2ForCausalLM` as a burn module, with a key/value cache
//! allocated up front for the context a caller needs: the prompt runs in one batch, then one
//! token at a time.
//!
//! Field names are the checkpoint's key segments (`model.layers.0.self_attn.q_proj.weight`).

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::activation::silu;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::device::{compute_dtype, upcast};
use crate::error::{EngineError, Result};
use crate::models::attention::attention_weights;
use crate::models::llama::config::LlamaConfig;
use crate::models::llama::quantized::{self, QuantizedMatrix};

/// The shape numbers every layer needs.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub heads: usize,
    pub key_value_heads: usize,
    pub head_size: usize,
    pub rotary_base: f64,
    pub vocab_size: usize,
    pub max_positions: usize,
}

#[derive(Module, Debug)]
pub struct LlamaForCausalLM {
    pub model: LlamaModel,
    /// `None` when the output projection is the token embedding (tied, as SmolLM2's).
    pub lm_head: Option<Projection>,
    #[module(skip)]
    pub shape: Shape,
}

#[derive(Module, Debug)]
pub struct LlamaModel {
    pub embed_tokens: TokenEmbedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub self_attn: SelfAttention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    pub q_proj: Projection,
    pub k_proj: Projection,
    pub v_proj: Projection,
    pub o_proj: Projection,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Projection,
    pub up_proj: Projection,
    pub down_proj: Projection,
}

/// A linear layer in PyTorch's layout (`weight` is `[out, in]`, so checkpoints load as they
/// are): dense on the device, or kept as its GGUF blocks on the processor (`quantized`, with
/// `weight` absent so the loader expects none).
#[derive(Module, Debug)]
pub struct Projection {
    pub weight: Option<Param<Tensor<2>>>,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub quantized: Option<QuantizedMatrix>,
}

/// The token table `[vocab, hidden]`, dense or in GGUF blocks like [`Projection`]; a tied
/// output projection reads it too.
#[derive(Module, Debug)]
pub struct TokenEmbedding {
    pub weight: Option<Param<Tensor<2>>>,
    #[module(skip)]
    pub quantized: Option<QuantizedMatrix>,
}

/// transformers' `LlamaRMSNorm`: statistics in f32, the weight applied in the model's type.
#[derive(Module, Debug)]
pub struct RmsNorm {
    pub weight: Param<Tensor<1>>,
    #[module(skip)]
    epsilon: f64,
}

impl LlamaConfig {
    pub fn init(&self, device: &Device) -> LlamaForCausalLM {
        self.init_keeping_quantized(device, &|_| false)
    }

    /// The model with no dense weight for the checkpoint keys `quantized` names: those are
    /// attached as GGUF blocks after loading (`models/llama/gguf.rs`). Parameters are made
    /// lazily, so loading never materialises the placeholders.
    pub fn init_keeping_quantized(
        &self,
        device: &Device,
        quantized: &dyn Fn(&str) -> bool,
    ) -> LlamaForCausalLM {
        let hidden = self.hidden_size;
        let (heads, key_value_heads, head_size) = (
            self.num_attention_heads,
            self.key_value_heads(),
            self.head_size(),
        );
        let dense = |key: String| !quantized(&key);
        let linear = |key: String, inputs: usize, outputs: usize, bias: bool| Projection {
            weight: dense(format!("{key}.weight"))
                .then(|| Initializer::Zeros.init([outputs, inputs], device)),
            bias: bias.then(|| Initializer::Zeros.init([outputs], device)),
            quantized: None,
        };
        let norm = || RmsNorm {
            weight: Initializer::Ones.init([hidden], device),
            epsilon: self.rms_norm_eps,
        };
        let layers = (0..self.num_hidden_layers)
            .map(|index| {
                let attention = |name: &str| format!("model.layers.{index}.self_attn.{name}");
                let mlp = |name: &str| format!("model.layers.{index}.mlp.{name}");
                let (qkv, kv_width) = (self.qkv_bias(), key_value_heads * head_size);
                DecoderLayer {
                    self_attn: SelfAttention {
                        q_proj: linear(attention("q_proj"), hidden, heads * head_size, qkv),
                        k_proj: linear(attention("k_proj"), hidden, kv_width, qkv),
                        v_proj: linear(attention("v_proj"), hidden, kv_width, qkv),
                        o_proj: linear(
                            attention("o_proj"),
                            heads * head_size,
                            hidden,
                            self.output_bias(),
                        ),
                    },
                    mlp: Mlp {
                        gate_proj: linear(mlp("gate_proj"), hidden, self.intermediate_size, false),
                        up_proj: linear(mlp("up_proj"), hidden, self.intermediate_size, false),
                        down_proj: linear(mlp("down_proj"), self.intermediate_size, hidden, false),
                    },
                    input_layernorm: norm(),
                    post_attention_layernorm: norm(),
                }
            })
            .collect();
        LlamaForCausalLM {
            model: LlamaModel {
                embed_tokens: TokenEmbedding {
                    weight: dense("model.embed_tokens.weight".into())
                        .then(|| Initializer::Zeros.init([self.vocab_size, hidden], device)),
                    quantized: None,
                },
                layers,
                norm: norm(),
            },
            lm_head: (!self.tie_word_embeddings)
                .then(|| linear("lm_head".into(), hidden, self.vocab_size, false)),
            shape: Shape {
                heads,
                key_value_heads,
                head_size,
                rotary_base: self.rotary_base(),
                vocab_size: self.vocab_size,
                max_positions: self.max_position_embeddings,
            },
        }
    }
}

/// Keys and values of every position read so far, per layer, in buffers of `capacity`
/// positions made once, and the rotary angles for those positions.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    cos: Tensor<2>,
    sin: Tensor<2>,
    length: usize,
    capacity: usize,
}

#[derive(Debug)]
struct LayerCache {
    // `Option` so a step can take the buffer and write into it in place (burn writes in place
    // when a tensor has one owner).
    keys: Option<Tensor<4>>,
    values: Option<Tensor<4>>,
}

impl KvCache {
    /// A cache for `capacity` positions (at most the model's own context).
    pub fn new(model: &LlamaForCausalLM, capacity: usize) -> Result<Self> {
        let shape = model.shape;
        if capacity == 0 || capacity > shape.max_positions {
            return Err(EngineError::Usage(format!(
                "a context of {capacity} positions; this model reads 1 to {}",
                shape.max_positions
            )));
        }
        let device = model.device();
        let dtype = compute_dtype(&device);
        let buffer = || {
            Some(Tensor::<4>::zeros(
                [1, shape.key_value_heads, capacity, shape.head_size],
                (&device, dtype),
            ))
        };
        let layers = model
            .model
            .layers
            .iter()
            .map(|_| LayerCache {
                keys: buffer(),
                values: buffer(),
            })
            .collect();
        // transformers' default rotary embedding: inverse frequencies base^(-2i/d), each angle
        // used for a pair (i, i + d/2).
        let half = shape.head_size / 2;
        let mut cos = Vec::with_capacity(capacity * shape.head_size);
        let mut sin = Vec::with_capacity(capacity * shape.head_size);
        for position in 0..capacity {
            let angles: Vec<f64> = (0..half)
                .map(|i| {
                    let frequency = 1.0
                        / shape
                            .rotary_base
                            .powf(2.0 * i as f64 / shape.head_size as f64);
                    position as f64 * frequency
                })
                .collect();
            for _ in 0..2 {
                cos.extend(angles.iter().map(|angle| angle.cos() as f32));
                sin.extend(angles.iter().map(|angle| angle.sin() as f32));
            }
        }
        let table = |values: Vec<f32>| {
            Tensor::<2>::from_data(
                TensorData::new(values, [capacity, shape.head_size]),
                (&device, dtype),
            )
        };
        Ok(KvCache {
            layers,
            cos: table(cos),
            sin: table(sin),
            length: 0,
            capacity,
        })
    }

    /// Positions read so far.
    pub fn len(&self) -> usize {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position (the buffers stay).
    pub fn clear(&mut self) {
        self.length = 0;
    }

    /// Forgets the positions from `length` on (a reply written again from there).
    pub fn truncate(&mut self, length: usize) {
        self.length = self.length.min(length);
    }
}

impl LlamaForCausalLM {
    pub fn device(&self) -> Device {
        self.model.norm.weight.device()
    }

    /// Reads `ids` after the positions already in `cache` and returns the final hidden states
    /// `[1, ids, hidden]` (after the last norm); [`logits`](Self::logits) turns them into scores.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor<3>> {
        let (start, count) = (cache.length, ids.len());
        if count == 0 {
            return Err(EngineError::Usage("no tokens to read".into()));
        }
        if start + count > cache.capacity {
            return Err(EngineError::Usage(format!(
                "the text is {} tokens long, more than the {} this writer keeps in mind",
                start + count,
                cache.capacity
            )));
        }
        if let Some(id) = ids.iter().find(|id| **id as usize >= self.shape.vocab_size) {
            return Err(EngineError::Usage(format!(
                "token id {id} is past the model's {} embeddings",
                self.shape.vocab_size
            )));
        }
        let device = self.device();
        let mut hidden = self.model.embed_tokens.forward(ids, &device);
        let rotary = |table: &Tensor<2>| {
            table
                .clone()
                .narrow(0, start, count)
                .reshape([1, 1, count, self.shape.head_size])
        };
        let (cos, sin) = (rotary(&cache.cos), rotary(&cache.sin));
        let mask = (count > 1).then(|| self.causal_mask(start, count, &device));
        for (layer, layer_cache) in self.model.layers.iter().zip(&mut cache.layers) {
            let attended = layer.self_attn.forward(
                layer.input_layernorm.forward(hidden.clone()),
                layer_cache,
                start,
                (&cos, &sin),
                mask.as_ref(),
                &self.shape,
            );
            hidden = hidden + attended;
            let transformed = layer
                .mlp
                .forward(layer.post_attention_layernorm.forward(hidden.clone()));
            hidden = hidden + transformed;
        }
        cache.length += count;
        Ok(self.model.norm.forward(hidden))
    }

    /// Gives the projection (or token table) at checkpoint key `key` its GGUF blocks; `false`
    /// when the model has no such weight.
    pub fn attach_quantized(&mut self, key: &str, matrix: QuantizedMatrix) -> bool {
        let projection = match key {
            "model.embed_tokens.weight" => {
                self.model.embed_tokens.quantized = Some(matrix);
                return true;
            }
            "lm_head.weight" => self.lm_head.as_mut(),
            _ => key
                .strip_prefix("model.layers.")
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(index, rest)| {
                    let layer = self.model.layers.get_mut(index.parse::<usize>().ok()?)?;
                    Some(match rest.strip_suffix(".weight")? {
                        "self_attn.q_proj" => &mut layer.self_attn.q_proj,
                        "self_attn.k_proj" => &mut layer.self_attn.k_proj,
                        "self_attn.v_proj" => &mut layer.self_attn.v_proj,
                        "self_attn.o_proj" => &mut layer.self_attn.o_proj,
                        "mlp.gate_proj" => &mut layer.mlp.gate_proj,
                        "mlp.up_proj" => &mut layer.mlp.up_proj,
                        "mlp.down_proj" => &mut layer.mlp.down_proj,
                        _ => return None,
                    })
                }),
        };
        match projection {
            Some(projection) => {
                projection.quantized = Some(matrix);
                true
            }
            None => false,
        }
    }

    /// Scores over the vocabulary `[1, positions, vocab]`, in f32.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let logits = match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => self.model.embed_tokens.output(hidden),
        };
        upcast(logits)
    }

    /// True where a query (each head group's rows: `count` positions from `start`) must not
    /// see a key: keys after its own position.
    fn causal_mask(&self, start: usize, count: usize, device: &Device) -> Tensor<4, Bool> {
        let groups = self.shape.heads / self.shape.key_value_heads;
        let keys = start + count;
        let masked: Vec<bool> = (0..groups * count)
            .flat_map(|row| (0..keys).map(move |key| key > start + row % count))
            .collect();
        Tensor::<4, Bool>::from_data(
            TensorData::new(masked, [1, 1, groups * count, keys]),
            device,
        )
    }
}

impl SelfAttention {
    fn forward(
        &self,
        hidden: Tensor<3>,
        cache: &mut LayerCache,
        start: usize,
        (cos, sin): (&Tensor<4>, &Tensor<4>),
        mask: Option<&Tensor<4, Bool>>,
        shape: &Shape,
    ) -> Tensor<3> {
        let [batch, count, _] = hidden.dims();
        let (heads, kv_heads, size) = (shape.heads, shape.key_value_heads, shape.head_size);
        let split = |projected: Tensor<3>, heads: usize| {
            projected
                .reshape([batch, count, heads, size])
                .swap_dims(1, 2)
        };
        let query = rotate(split(self.q_proj.forward(hidden.clone()), heads), cos, sin);
        let key = rotate(
            split(self.k_proj.forward(hidden.clone()), kv_heads),
            cos,
            sin,
        );
        let value = split(self.v_proj.forward(hidden), kv_heads);
        let end = start + count;
        let write = |buffer: &mut Option<Tensor<4>>, new: Tensor<4>| {
            let written = buffer
                .take()
                .expect("the cache's buffer")
                .slice_assign([0..batch, 0..kv_heads, start..end, 0..size], new);
            *buffer = Some(written.clone());
            written.narrow(2, 0, end)
        };
        let keys = write(&mut cache.keys, key);
        let values = write(&mut cache.values, value);
        // Grouped-query attention without copying keys: each key/value head answers its group of
        // query heads, whose rows are stacked (group × position).
        let groups = heads / kv_heads;
        let query =
            query.reshape([batch, kv_heads, groups * count, size]) * (size as f64).powf(-0.5);
        let weights = attention_weights(
            upcast(query),
            upcast(keys.swap_dims(2, 3)),
            mask,
            values.dtype(),
        );
        let context = weights
            .matmul(values)
            .reshape([batch, heads, count, size])
            .swap_dims(1, 2)
            .reshape([batch, count, heads * size]);
        self.o_proj.forward(context)
    }
}

impl Projection {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let product = match (&self.weight, &self.quantized) {
            (Some(weight), _) => x.matmul(weight.val().transpose().unsqueeze::<3>()),
            (None, Some(matrix)) => quantized::forward(matrix, x),
            (None, None) => unreachable!("loading gives every projection its weight"),
        };
        match &self.bias {
            Some(bias) => product + bias.val().unsqueeze::<3>(),
            None => product,
        }
    }
}

impl TokenEmbedding {
    /// The rows of `ids`: `[1, ids, hidden]`.
    fn forward(&self, ids: &[u32], device: &Device) -> Tensor<3> {
        match (&self.weight, &self.quantized) {
            (Some(weight), _) => {
                let picks = TensorData::new(
                    ids.iter().map(|&id| i64::from(id)).collect::<Vec<_>>(),
                    [ids.len()],
                );
                let picks = Tensor::<1, Int>::from_data(picks, device);
                weight.val().select(0, picks).unsqueeze::<3>()
            }
            (None, Some(matrix)) => {
                let mut rows = Vec::with_capacity(ids.len() * matrix.columns());
                for &id in ids {
                    matrix.row_into(id as usize, &mut rows);
                }
                Tensor::<3>::from_data(
                    TensorData::new(rows, [1, ids.len(), matrix.columns()]),
                    (device, compute_dtype(device)),
                )
            }
            (None, None) => unreachable!("loading gives the token table its weight"),
        }
    }

    /// Scores over the vocabulary from hidden states, through the table (tied embeddings).
    fn output(&self, hidden: Tensor<3>) -> Tensor<3> {
        match (&self.weight, &self.quantized) {
            (Some(weight), _) => hidden.matmul(weight.val().transpose().unsqueeze::<3>()),
            (None, Some(matrix)) => quantized::forward(matrix, hidden),
            (None, None) => unreachable!("loading gives the token table its weight"),
        }
    }
}

/// transformers' `apply_rotary_pos_emb`: `x·cos + rotate_half(x)·sin`.
fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let first = x.clone().narrow(3, 0, half);
    let second = x.clone().narrow(3, half, half);
    let rotated = Tensor::cat(vec![second.neg(), first], 3);
    x * cos.clone() + rotated * sin.clone()
}

impl Mlp {
    fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(hidden.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(hidden))
    }
}

impl RmsNorm {
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        let dtype = hidden.dtype();
        let hidden = upcast(hidden);
        let variance = hidden.clone().powi_scalar(2).mean_dim(2);
        let normed = hidden * (variance + self.epsilon).sqrt().recip();
        normed.cast(dtype) * self.weight.val().unsqueeze::<3>()
    }
}
