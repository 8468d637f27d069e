//! diffusers' attention pieces: `Attention`, `FeedForward` (GEGLU), `BasicTransformerBlock`,
//! `Transformer2DModel`, and the VAE's single-head spatial attention.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

pub use crate::models::attention_scores::{
    MAX_SLICE_SCORES, attention_weights, query_slice, sliced,
};
use crate::models::attention_training::recomputed_in_backward;
use crate::models::conv;
use crate::models::resnet::{conv1x1, group_norm};

/// Scaled dot-product attention over `[batch, tokens, heads·dim]`.
///
/// On a GPU burn's flash kernel runs ([`flash_on_the_gpu`]) for heads up to
/// [`FLASH_MAX_HEAD_DIM`]: no score matrix, 3–4× faster than the slices at 4,096 tokens
/// (docs/benchmarks.md, issue 30). Where it does not apply, queries are processed in slices so
/// the score tensor of one slice stays small: at 512² the full `[batch, heads, 4096, 4096]`
/// scores (640 MiB for SD-Turbo's 5 heads with guidance) would not fit a WebGPU binding (128 MiB
/// by default). On burn's CPU backend its fused kernel runs instead (see [`fused_on_the_cpu`]);
/// in training, see [`attend`].
pub fn scaled_dot_product(
    query: Tensor<3>,
    key: Tensor<3>,
    value: Tensor<3>,
    heads: usize,
) -> Tensor<3> {
    let [batch, queries, width] = query.dims();
    let keys = key.dims()[1];
    let head_dim = width / heads;
    let split = |tensor: Tensor<3>, tokens: usize| {
        tensor
            .reshape([batch, tokens, heads, head_dim])
            .swap_dims(1, 2)
    };
    let (query, key, value) = (split(query, queries), split(key, keys), split(value, keys));
    attend(query, key, value)
        .swap_dims(1, 2)
        .reshape([batch, queries, width])
}

/// Attention over `[batch, heads, tokens, head_dim]` (unscaled) by the fastest path `query`'s
/// device has: burn's fused kernel on its CPU backend, flash on a GPU, else the slices. Under
/// autodiff the same forward pass runs outside the graph and the backward pass recomputes the
/// scores slice by slice ([`recomputed_in_backward`]), so training keeps no score matrix.
pub fn attend(query: Tensor<4>, key: Tensor<4>, value: Tensor<4>) -> Tensor<4> {
    let device = query.device();
    if sliced_asked() {
        return sliced(query, key, value);
    }
    if device.is_autodiff() {
        return recomputed_in_backward(&query, &key, &value, attend)
            .unwrap_or_else(|| sliced(query, key, value));
    }
    if fused_on_the_cpu(&device) {
        return attention(
            query,
            key,
            value,
            None,
            None,
            AttentionModuleOptions::default(),
        );
    }
    let head_dim = query.dims()[3];
    (head_dim <= FLASH_MAX_HEAD_DIM)
        .then(|| flash_on_the_gpu(&query, &key, &value))
        .flatten()
        .unwrap_or_else(|| sliced(query, key, value))
}

/// Whether `TODDLER_ATTENTION=sliced` asks natively for the slices everywhere (differentiated as
/// ordinary operations in training), for benchmarks that put both side by side.
fn sliced_asked() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    {
        static SLICED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *SLICED
            .get_or_init(|| std::env::var("TODDLER_ATTENTION").is_ok_and(|value| value == "sliced"))
    }
    #[cfg(target_arch = "wasm32")]
    false
}

/// The widest head burn's flash kernel is given. Its kernel is unrolled over the head, and
/// compiling it on LLVM-based drivers (lavapipe, and SwiftShader in browsers) grows steeply
/// with the width: 1.9 s for SD 1.x's heads of 40, 5 s for SD 2.x's 64, 9 s for 80, 49 s for
/// 160, and over a minute for the VAE's 512 (f16 on lavapipe, docs/benchmarks.md, issue 30).
/// Heads of 40 and 64 sit at the first level, over 4,096 tokens at 512², where flash saves
/// 2–3 s a call; the wider heads sit at levels of 1,024 tokens or fewer, where the slices cost
/// a few hundred milliseconds and the compilation would not pay back within a session.
pub const FLASH_MAX_HEAD_DIM: usize = 64;

/// Whether attention on `device` goes through burn's fused `attention`: on its CPU backend
/// (in training too, whose forward pass runs outside the graph). That kernel splits the work by
/// head over the cores, keeps no score matrix (an online softmax over tiles of keys once there
/// are many) and computes in f32 whatever the weights' type; the materialised scores it replaces
/// cost a UNet step at 256² a third of its time, mostly in allocating them (docs/benchmarks.md,
/// issue 18). On the GPU the fused kernel is the same materialised fallback without autotune.
fn fused_on_the_cpu(device: &Device) -> bool {
    *device == Device::flex()
}

/// burn's flash attention on a GPU outside training: cubek-attention's unit routine, an online
/// softmax over tiles of keys held in registers with f32 accumulators, so no score matrix is
/// ever written (the sliced path writes and re-reads 4,096 × 4,096 scores per head at 512²).
/// It needs no `cmma`, so it runs on WGSL. `None` where it does not apply: burn's CPU backend,
/// autodiff tensors (burn 0.22.1 differentiates only the materialised fallback), or builds
/// with burn's `fusion`, whose tensors are fusion handles rather than cubecl tensors.
/// Inputs are `[batch, heads, tokens, head_dim]`, unscaled (burn scales by `1/√head_dim`).
pub fn flash_on_the_gpu(
    query: &Tensor<4>,
    key: &Tensor<4>,
    value: &Tensor<4>,
) -> Option<Tensor<4>> {
    #[cfg(not(feature = "fusion"))]
    {
        use burn_cubecl::Cube;
        use burn_cubecl::kernel::attention::{AttentionStrategy, attention};
        let primitive = |tensor: &Tensor<4>| tensor.clone().try_into_primitive::<Cube>().ok();
        let context = attention(
            primitive(query)?,
            primitive(key)?,
            primitive(value)?,
            None,
            None,
            // Unscaled (burn's `1/√head_dim`), not causal, no softcap: anything else falls back.
            AttentionModuleOptions::default(),
            AttentionStrategy::FlashUnit,
        )
        .ok()?;
        Some(Tensor::from_primitive::<Cube>(context))
    }
    #[cfg(feature = "fusion")]
    {
        let _ = (query, key, value);
        None
    }
}

/// Multi-head attention; keys and values come from `context` for cross-attention.
#[derive(Module, Debug)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    /// diffusers' `to_out` is `[Linear, Dropout]`; only the linear layer has weights.
    pub to_out: Vec<Linear>,
    heads: usize,
}

impl Attention {
    pub fn new(
        device: &Device,
        query_dim: usize,
        context_dim: usize,
        heads: usize,
        head_dim: usize,
        bias: bool,
    ) -> Self {
        let inner = heads * head_dim;
        Attention {
            to_q: LinearConfig::new(query_dim, inner)
                .with_bias(bias)
                .init(device),
            to_k: LinearConfig::new(context_dim, inner)
                .with_bias(bias)
                .init(device),
            to_v: LinearConfig::new(context_dim, inner)
                .with_bias(bias)
                .init(device),
            to_out: vec![LinearConfig::new(inner, query_dim).init(device)],
            heads,
        }
    }

    pub fn forward(&self, hidden: Tensor<3>, context: Option<&Tensor<3>>) -> Tensor<3> {
        let context = context.cloned().unwrap_or_else(|| hidden.clone());
        let attended = scaled_dot_product(
            self.to_q.forward(hidden),
            self.to_k.forward(context.clone()),
            self.to_v.forward(context),
            self.heads,
        );
        self.to_out[0].forward(attended)
    }
}

/// GEGLU feed-forward. Checkpoint keys `ff.net.0.proj` / `ff.net.2` are loaded into `proj_in` /
/// `proj_out` (see `unet_2d.rs`).
#[derive(Module, Debug)]
pub struct FeedForward {
    pub proj_in: Linear,
    pub proj_out: Linear,
}

impl FeedForward {
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<3> {
        let mut halves = self.proj_in.forward(hidden).chunk(2, 2);
        let gate = halves.pop().expect("two halves");
        let value = halves.pop().expect("two halves");
        self.proj_out.forward(value * gelu(gate))
    }
}

#[derive(Module, Debug)]
pub struct BasicTransformerBlock {
    /// diffusers' `only_cross_attention` (SDXS): the first attention also attends to the
    /// prompt instead of the picture itself.
    only_cross_attention: bool,
    pub norm1: LayerNorm,
    pub attn1: Attention,
    pub norm2: LayerNorm,
    pub attn2: Attention,
    pub norm3: LayerNorm,
    pub ff: FeedForward,
}

impl BasicTransformerBlock {
    pub fn new(
        device: &Device,
        dim: usize,
        context_dim: usize,
        heads: usize,
        only_cross_attention: bool,
    ) -> Self {
        let head_dim = dim / heads;
        let norm = || LayerNormConfig::new(dim).init(device);
        let first_context_dim = if only_cross_attention {
            context_dim
        } else {
            dim
        };
        BasicTransformerBlock {
            only_cross_attention,
            norm1: norm(),
            attn1: Attention::new(device, dim, first_context_dim, heads, head_dim, false),
            norm2: norm(),
            attn2: Attention::new(device, dim, context_dim, heads, head_dim, false),
            norm3: norm(),
            ff: FeedForward {
                proj_in: LinearConfig::new(dim, dim * 8).init(device),
                proj_out: LinearConfig::new(dim * 4, dim).init(device),
            },
        }
    }

    pub fn forward(&self, hidden: Tensor<3>, context: &Tensor<3>) -> Tensor<3> {
        let first_context = self.only_cross_attention.then_some(context);
        let hidden = self
            .attn1
            .forward(self.norm1.forward(hidden.clone()), first_context)
            + hidden;
        let hidden = self
            .attn2
            .forward(self.norm2.forward(hidden.clone()), Some(context))
            + hidden;
        self.ff.forward(self.norm3.forward(hidden.clone())) + hidden
    }
}

/// `proj_in`/`proj_out` are 1×1 convolutions in SD 1.x and linear layers in SD 2.x.
#[derive(Module, Debug)]
pub enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

#[derive(Module, Debug)]
pub struct Transformer2DModel {
    pub norm: GroupNorm,
    pub proj_in: Projection,
    pub transformer_blocks: Vec<BasicTransformerBlock>,
    pub proj_out: Projection,
}

/// The sizes of a `Transformer2DModel`.
pub struct TransformerShape {
    pub channels: usize,
    pub heads: usize,
    pub context_dim: usize,
    pub layers: usize,
    pub groups: usize,
    pub linear_projection: bool,
    pub only_cross_attention: bool,
}

impl TransformerShape {
    pub fn init(&self, device: &Device) -> Transformer2DModel {
        let projection = || {
            if self.linear_projection {
                Projection::Linear(LinearConfig::new(self.channels, self.channels).init(device))
            } else {
                Projection::Conv(conv1x1(device, self.channels, self.channels))
            }
        };
        Transformer2DModel {
            norm: group_norm(device, self.groups, self.channels, 1e-6),
            proj_in: projection(),
            transformer_blocks: (0..self.layers)
                .map(|_| {
                    BasicTransformerBlock::new(
                        device,
                        self.channels,
                        self.context_dim,
                        self.heads,
                        self.only_cross_attention,
                    )
                })
                .collect(),
            proj_out: projection(),
        }
    }
}

impl Transformer2DModel {
    pub fn forward(&self, input: Tensor<4>, context: &Tensor<3>) -> Tensor<4> {
        let [batch, channels, height, width] = input.dims();
        let normed = self.norm.forward(input.clone());
        let to_tokens = |image: Tensor<4>| {
            image
                .reshape([batch, channels, height * width])
                .swap_dims(1, 2)
        };
        let to_image = |tokens: Tensor<3>| {
            tokens
                .swap_dims(1, 2)
                .reshape([batch, channels, height, width])
        };
        let tokens = match &self.proj_in {
            Projection::Conv(projection) => to_tokens(conv::forward(projection, normed)),
            Projection::Linear(linear) => linear.forward(to_tokens(normed)),
        };
        let tokens = self
            .transformer_blocks
            .iter()
            .fold(tokens, |tokens, block| block.forward(tokens, context));
        let output = match &self.proj_out {
            Projection::Conv(projection) => conv::forward(projection, to_image(tokens)),
            Projection::Linear(linear) => to_image(linear.forward(tokens)),
        };
        output + input
    }
}

/// The VAE's mid-block attention: group norm, one head over all channels, residual.
#[derive(Module, Debug)]
pub struct SpatialAttention {
    pub group_norm: GroupNorm,
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Vec<Linear>,
}

impl SpatialAttention {
    pub fn new(device: &Device, channels: usize, groups: usize, epsilon: f64) -> Self {
        let linear = || LinearConfig::new(channels, channels).init(device);
        SpatialAttention {
            group_norm: group_norm(device, groups, channels, epsilon),
            to_q: linear(),
            to_k: linear(),
            to_v: linear(),
            to_out: vec![linear()],
        }
    }

    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let [batch, channels, height, width] = input.dims();
        let tokens = self
            .group_norm
            .forward(input.clone())
            .reshape([batch, channels, height * width])
            .swap_dims(1, 2);
        let attended = scaled_dot_product(
            self.to_q.forward(tokens.clone()),
            self.to_k.forward(tokens.clone()),
            self.to_v.forward(tokens),
            1,
        );
        let output = self.to_out[0]
            .forward(attended)
            .swap_dims(1, 2)
            .reshape([batch, channels, height, width]);
        output + input
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WebGPU's default `maxStorageBufferBindingSize`.
    const BINDING_LIMIT: usize = 128 << 20;

    #[test]
    fn attention_scores_at_512_fit_a_default_webgpu_binding() {
        // 512² → 64² latents → 4096 tokens at the first level; SD-Turbo has 5 heads there,
        // SD 1.x 8; guidance doubles the batch.
        for (batch, heads) in [(1, 5), (2, 5), (2, 8), (2, 20)] {
            let (queries, keys) = (4096, 4096);
            let slice = query_slice(batch, heads, queries, keys);
            let bytes = batch * heads * slice * keys * 4;
            assert!(bytes <= BINDING_LIMIT / 4, "{batch}×{heads}: {bytes} bytes");
            // And the whole tensor would not have fitted: slicing is what makes it work.
            assert!(batch * heads * queries * keys * 4 > BINDING_LIMIT);
        }
        // Small inputs run in one slice.
        assert_eq!(query_slice(1, 8, 16, 16), 16);
    }
}
