//! Attention under autodiff (the avatar's training) with a backward pass that recomputes the
//! scores one slice of queries at a time, as flash attention's backward does per tile, instead
//! of keeping them from the forward pass.
//!
//! Differentiated as ordinary tensor operations, the sliced attention keeps every slice's scores
//! and softmax alive until the backward pass: at 512², 2 × 335 MB in f32 for each of SD-Turbo's
//! first-level self-attentions (5 heads, 4,096 tokens). Here the forward pass runs outside the
//! graph by the device's inference path (burn's flash kernel on a GPU, its fused kernel on the
//! CPU) and keeps only its inputs and output; the backward pass rebuilds `softmax(q·kᵀ)` slice by
//! slice (at most [`MAX_SLICE_SCORES`] per tensor) and turns it into the three gradients with
//! burn's matmuls. burn 0.22.1 differentiates only the materialised fallback of its own
//! `attention`, and cubek-attention's flash backward (0.3.1) is a per-row scalar scaffold in f32
//! alone, so the gradients are written here, in f32 whatever the inputs' type.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor, Flex};
use burn::tensor::{DType, Tensor};

use crate::device::upcast;
#[cfg(doc)]
use crate::models::attention_scores::MAX_SLICE_SCORES;
use crate::models::attention_scores::{attention_weights, query_slice};

/// The forward pass run outside the graph: `models::attention::attend` (passed in, so this
/// module depends only on the scores it recomputes).
pub type Forward = fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>;

/// Attention over autodiff tensors `[batch, heads, tokens, head_dim]` (unscaled: `1/√head_dim`
/// is applied here) computed by `forward` on the tensors under the graph, whose backward
/// recomputes the scores; `None` where the tensors are not autodiff tensors of a backend this
/// engine runs on.
pub fn recomputed_in_backward(
    query: &Tensor<4>,
    key: &Tensor<4>,
    value: &Tensor<4>,
    forward: Forward,
) -> Option<Tensor<4>> {
    // A fusion build's GPU tensors are fusion handles, not cubecl tensors.
    #[cfg(not(feature = "fusion"))]
    if let Some(context) = on_backend::<burn_cubecl::Cube>(query, key, value, forward) {
        return Some(context);
    }
    on_backend::<Flex>(query, key, value, forward)
}

fn on_backend<B>(
    query: &Tensor<4>,
    key: &Tensor<4>,
    value: &Tensor<4>,
    forward: Forward,
) -> Option<Tensor<4>>
where
    B: Backend,
    DispatchTensor: DispatchKindConversion<B>
        + DispatchKindConversion<Autodiff<B, NoCheckpointing>>
        + DispatchKindConversion<Autodiff<B, BalancedCheckpointing>>,
{
    with_strategy::<B, NoCheckpointing>(query, key, value, forward)
        .or_else(|| with_strategy::<B, BalancedCheckpointing>(query, key, value, forward))
}

fn with_strategy<B, C>(
    query: &Tensor<4>,
    key: &Tensor<4>,
    value: &Tensor<4>,
    forward: Forward,
) -> Option<Tensor<4>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let tracked = |tensor: &Tensor<4>| tensor.clone().try_into_primitive::<Autodiff<B, C>>().ok();
    let (query, key, value) = (tracked(query)?, tracked(key)?, tracked(value)?);
    let inner =
        |primitive: &B::FloatTensorPrimitive| Tensor::<4>::from_primitive::<B>(primitive.clone());
    let context = forward(
        inner(query.primitive()),
        inner(key.primitive()),
        inner(value.primitive()),
    );
    let context = primitive_of::<B>(context);
    let output = match RecomputedAttention
        .prepare::<C>([query.node(), key.node(), value.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            (
                query.into_primitive(),
                key.into_primitive(),
                value.into_primitive(),
                context.clone(),
            ),
            context,
        ),
        OpsKind::UnTracked(prep) => prep.finish(context),
    };
    Some(Tensor::from_primitive::<Autodiff<B, C>>(output))
}

fn primitive_of<B>(tensor: Tensor<4>) -> B::FloatTensorPrimitive
where
    B: Backend,
    DispatchTensor: DispatchKindConversion<B>,
{
    tensor
        .try_into_primitive::<B>()
        .expect("a tensor computed from this backend's tensors stays on it")
}

/// The backward step: state is the forward pass's query, key, value and output.
#[derive(Debug)]
struct RecomputedAttention;

impl<B> Backward<B, 3> for RecomputedAttention
where
    B: Backend,
    DispatchTensor: DispatchKindConversion<B>,
{
    type State = (
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
        B::FloatTensorPrimitive,
    );

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [query_node, key_node, value_node] = ops.parents;
        let tensor = |primitive| Tensor::<4>::from_primitive::<B>(primitive);
        let output_gradient = tensor(grads.consume::<B>(&ops.node));
        let (query, key, value, output) = ops.state;
        let (query, key) = (tensor(query), tensor(key));
        let [batch, heads, queries, _] = query.dims();
        let slice = query_slice(batch, heads, queries, key.dims()[2]);
        let gradients = attention_gradients(
            query,
            key,
            tensor(value),
            tensor(output),
            output_gradient,
            slice,
        );
        for (node, gradient) in [query_node, key_node, value_node]
            .into_iter()
            .zip(gradients)
        {
            if let Some(node) = node {
                grads.register::<B>(node.id, primitive_of::<B>(gradient));
            }
        }
    }
}

/// The gradients of `softmax(q·kᵀ/√d)·v` with respect to `q`, `k` and `v`, given the output `o`
/// and its gradient `dO`, with the scores rebuilt `slice` queries at a time. With
/// `P = softmax(S)` and `dP = dO·vᵀ`: `dv = Pᵀ·dO`, `dS = P ⊙ (dP − rowsum(dO ⊙ o))`,
/// `dq = dS·k/√d`, `dk = dSᵀ·q/√d`. Each gradient comes back in its input's type.
pub fn attention_gradients(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    output: Tensor<4>,
    output_gradient: Tensor<4>,
    slice: usize,
) -> [Tensor<4>; 3] {
    let [_, _, queries, head_dim] = query.dims();
    let dtypes = [query.dtype(), key.dtype(), value.dtype()];
    let scale = (head_dim as f64).powf(-0.5);
    let query = upcast(query) * scale;
    let key = upcast(key);
    let key_t = key.clone().swap_dims(2, 3);
    let value_t = upcast(value).swap_dims(2, 3);
    let output_gradient = upcast(output_gradient);
    // rowsum(dO ⊙ o) = rowsum(P ⊙ dP): the softmax's own term, from the output already made.
    let row_terms = (output_gradient.clone() * upcast(output)).sum_dim(3);
    let mut query_gradients = Vec::new();
    let mut key_gradient: Option<Tensor<4>> = None;
    let mut value_gradient: Option<Tensor<4>> = None;
    let add = |sum: Option<Tensor<4>>, term: Tensor<4>| {
        Some(match sum {
            Some(sum) => sum + term,
            None => term,
        })
    };
    for start in (0..queries).step_by(slice) {
        let length = slice.min(queries - start);
        let query = query.clone().narrow(2, start, length);
        let output_gradient = output_gradient.clone().narrow(2, start, length);
        let weights = attention_weights(query.clone(), key_t.clone(), None, DType::F32);
        let weight_gradients = output_gradient.clone().matmul(value_t.clone());
        let score_gradients =
            weights.clone() * (weight_gradients - row_terms.clone().narrow(2, start, length));
        value_gradient = add(
            value_gradient,
            weights.swap_dims(2, 3).matmul(output_gradient),
        );
        query_gradients.push(score_gradients.clone().matmul(key.clone()) * scale);
        key_gradient = add(key_gradient, score_gradients.swap_dims(2, 3).matmul(query));
    }
    let query_gradient = if query_gradients.len() == 1 {
        query_gradients.pop().unwrap()
    } else {
        Tensor::cat(query_gradients, 2)
    };
    let [query_dtype, key_dtype, value_dtype] = dtypes;
    [
        query_gradient.cast(query_dtype),
        key_gradient.expect("at least one query").cast(key_dtype),
        value_gradient
            .expect("at least one query")
            .cast(value_dtype),
    ]
}
