//! burn's flash attention on the GPU against the engine's sliced attention, which the parity
//! suites hold to diffusers.

use burn::tensor::{DType, Device, Distribution, Tensor};
use engine::models::attention::{attend, flash_on_the_gpu, scaled_dot_product, sliced};
use engine::models::attention_training::{attention_gradients, recomputed_in_backward};

use super::{max_abs_diff, values};

/// `(batch, heads, head_dim, queries, keys)`: SD 2.x's heads of 64 and SD 1.x's 40, self- and
/// cross-attention (77 prompt tokens), token counts that no tile divides, guidance's batch of two.
const CASES: [(usize, usize, usize, usize, usize); 3] = [
    (2, 5, 64, 300, 300),
    (2, 5, 64, 300, 77),
    (1, 8, 40, 257, 257),
];

/// Query, key and value for one case: sharp scores (queries and keys of scale 4).
fn random_inputs(
    (batch, heads, head_dim, queries, keys): (usize, usize, usize, usize, usize),
    device: &Device,
) -> [Tensor<4>; 3] {
    let random = |tokens: usize, scale: f64| {
        Tensor::<4>::random(
            [batch, heads, tokens, head_dim],
            Distribution::Normal(0.0, scale),
            device,
        )
    };
    [random(queries, 4.0), random(keys, 4.0), random(keys, 1.0)]
}

/// Flash runs (no silent fallback to the slices) and matches them within `tolerance` (max
/// difference relative to the largest output), over the shapes the engine gives it: SD 2.x's
/// heads of 64 and SD 1.x's 40, self- and cross-attention (77 prompt tokens), token counts that
/// no tile divides, guidance's batch of two, and sharp scores (queries and keys of scale 4).
pub fn assert_flash_matches_slices(device: &Device, tolerance: f32) {
    for case @ (batch, heads, head_dim, queries, keys) in CASES {
        let [query, key, value] = random_inputs(case, device);
        let flash = flash_on_the_gpu(&query, &key, &value).unwrap_or_else(|| {
            panic!("flash attention runs on {device:?} for {heads} heads of {head_dim}")
        });
        let slices = sliced(query.clone(), key.clone(), value.clone());
        let difference = max_relative_difference(&slices, &flash);
        assert!(
            difference <= tolerance,
            "{batch}×{heads} heads of {head_dim}, {queries}×{keys}: flash differs by {difference:e}"
        );
        // And the engine's attention takes it: the same output as flash, bit for bit.
        let engine = scaled_dot_product(
            merge_heads(query),
            merge_heads(key),
            merge_heads(value),
            heads,
        );
        assert_eq!(max_relative_difference(&merge_heads(flash), &engine), 0.0);
    }
}

fn merge_heads(tensor: Tensor<4>) -> Tensor<3> {
    let [batch, heads, tokens, head_dim] = tensor.dims();
    tensor
        .swap_dims(1, 2)
        .reshape([batch, tokens, heads * head_dim])
}

fn max_relative_difference<const D: usize>(reference: &Tensor<D>, other: &Tensor<D>) -> f32 {
    let (reference, other) = (values(reference.clone()), values(other.clone()));
    let scale = reference
        .1
        .iter()
        .fold(0.0f32, |largest, value| largest.max(value.abs()));
    max_abs_diff(&other, &reference) / scale
}

/// Training's attention (the forward pass outside the graph, the scores recomputed slice by
/// slice in the backward pass) against the slices differentiated as ordinary operations in f32,
/// which the avatar's gradient-parity suites hold to PyTorch: the same outputs and gradients for
/// query, key and value within `tolerance` (relative to each reference's largest value), over
/// the shapes the flash test uses, with the engine's slice and with slices no count divides.
pub fn assert_recomputed_gradients_match_slices(device: &Device, tolerance: f32) {
    let training = device.clone().autodiff();
    for case @ (batch, heads, head_dim, queries, keys) in CASES {
        let inputs = random_inputs(case, device).map(Tensor::into_data);
        let dtype = Tensor::<4>::zeros([1, 1, 1, 1], device).dtype();
        // The loss weighs each output differently so no gradient is trivially shared.
        let weights = Tensor::<4>::random(
            [batch, heads, queries, head_dim],
            Distribution::Normal(0.0, 1.0),
            &training,
        );
        let run_in = |dtype: DType, attend: &dyn Fn(&[Tensor<4>; 3]) -> Tensor<4>| {
            let tracked = inputs
                .clone()
                .map(|data| Tensor::<4>::from_data(data, (&training, dtype)).require_grad());
            let output = attend(&tracked);
            let gradients = (output.clone() * weights.clone().cast(dtype))
                .sum()
                .backward();
            let [query, key, value] =
                tracked.map(|input| input.grad(&gradients).expect("a gradient for each input"));
            [output, query, key, value]
        };
        // The reference in f32 whatever the device's type (f16 inputs are exact in f32): the
        // slices differentiated in f16 are themselves off by up to 6e-3.
        let reference = run_in(DType::F32, &|[query, key, value]| {
            sliced(query.clone(), key.clone(), value.clone())
        });
        let run = |attend: &dyn Fn(&[Tensor<4>; 3]) -> Tensor<4>| run_in(dtype, attend);
        let recomputed = run(&|[query, key, value]| {
            recomputed_in_backward(query, key, value, attend).unwrap_or_else(|| {
                panic!("training's attention runs on {device:?} for {heads} heads of {head_dim}")
            })
        });
        let engine = run(&|[query, key, value]| {
            let context = scaled_dot_product(
                merge_heads(query.clone()),
                merge_heads(key.clone()),
                merge_heads(value.clone()),
                heads,
            );
            context
                .reshape([batch, queries, heads, head_dim])
                .swap_dims(1, 2)
        });
        // The gradients' arithmetic alone, with slices of 7 queries (none divides the counts).
        let plain = inputs
            .clone()
            .map(|data| Tensor::<4>::from_data(data, (device, dtype)));
        let [query, key, value] = plain;
        let output = attend(query.clone(), key.clone(), value.clone());
        let by_sevens = attention_gradients(
            query,
            key,
            value,
            output.clone(),
            Tensor::from_data(weights.clone().into_data(), (device, dtype)),
            7,
        );
        let by_sevens = [[output].as_slice(), by_sevens.as_slice()].concat();
        for (path, results) in [
            ("recomputed", &recomputed[..]),
            ("by sevens", &by_sevens[..]),
        ] {
            for (name, (reference, result)) in ["output", "query", "key", "value"]
                .into_iter()
                .zip(reference.iter().zip(results))
            {
                let difference = max_relative_difference(reference, result);
                eprintln!(
                    "{batch}×{heads}×{head_dim}, {queries}×{keys}, {path}, {name}: {difference:e}"
                );
                assert!(
                    difference <= tolerance,
                    "{batch}×{heads} heads of {head_dim}, {queries}×{keys}, {path}: the {name} \
                     (gradient) differs by {difference:e}"
                );
            }
        }
        // The engine's attention under autodiff is this path, bit for bit.
        for (recomputed, engine) in recomputed.iter().zip(&engine) {
            assert_eq!(max_relative_difference(recomputed, engine), 0.0);
        }
    }
}
