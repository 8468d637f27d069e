//! Convolutions as matrix products. Without autotune (which the browser cannot keep between
//! sessions) burn's GPU backend convolves with its direct kernel, which reaches a quarter of its
//! own matmul's rate on a 3×3 convolution and a fifth on a 1×1 (`cargo xtask bench kernels`); as
//! im2col + matmul the same 3×3 runs 2.3× faster. So the SD-class shapes — 1×1, and 3×3 with
//! stride 1 and padding 1 — go through [`forward`]'s matmuls; anything else keeps burn's kernel.
//!
//! Under autodiff (avatar training) burn's kernel is kept: the nine shifted copies would be held
//! for the backward pass, nine times the activation memory that training is short of.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use burn::tensor::ops::PadMode;

use crate::device::convolve_through_matmuls;

/// Elements in one band's `[batch, 9·channels, rows·width]` column tensor, at most: 32 MiB in
/// f32, a quarter of WebGPU's default 128 MiB storage-binding limit (as attention's slices).
pub const MAX_COLUMN_ELEMENTS: usize = 1 << 23;

/// Natively, `TODDLER_CONV=direct` keeps burn's kernel everywhere: for benchmarks that put
/// both paths side by side in one run.
fn direct_asked() -> bool {
    static DIRECT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DIRECT.get_or_init(|| std::env::var("TODDLER_CONV").is_ok_and(|value| value == "direct"))
}

/// `conv.forward(input)`, through matmuls where the device set-up asked for them
/// ([`crate::device::set_convolve_through_matmuls`]) and the shape allows.
pub fn forward(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    if !convolve_through_matmuls() || direct_asked() || input.device().is_autodiff() {
        return conv.forward(input);
    }
    through_matmuls(conv, input)
}

/// `conv.forward(input)` as matmuls for 1×1 and stride-1 3×3 convolutions; burn's kernel for
/// any other.
pub fn through_matmuls(conv: &Conv2d, input: Tensor<4>) -> Tensor<4> {
    if conv.groups != 1 || conv.stride != [1, 1] || conv.dilation != [1, 1] {
        return conv.forward(input);
    }
    // Stride 1: `Same` pads a 3×3 by one on every side, as `Explicit(1, 1, 1, 1)` does.
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some(0),
        PaddingConfig2d::Same => Some(conv.kernel_size[0] / 2),
        PaddingConfig2d::Explicit(top, left, bottom, right)
            if top == left && left == bottom && bottom == right =>
        {
            Some(top)
        }
        PaddingConfig2d::Explicit(..) => None,
    };
    let bias = conv.bias.as_ref().map(|bias| bias.val());
    match (conv.kernel_size, padding) {
        ([1, 1], Some(0)) => pointwise(input, conv.weight.val(), bias),
        ([3, 3], Some(1)) => three_by_three(input, conv.weight.val(), bias),
        _ => conv.forward(input),
    }
}

/// A 1×1 convolution: `[o, c] × [b, c, h·w]`.
fn pointwise(input: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [batch, channels, height, width] = input.dims();
    let outputs = weight.dims()[0];
    let product = weight
        .reshape([1, outputs, channels])
        .matmul(input.reshape([batch, channels, height * width]));
    with_bias(product, bias).reshape([batch, outputs, height, width])
}

/// A 3×3 convolution with padding 1: the nine shifted copies of the input stacked along the
/// channels (`[b, 9c, h·w]`) against the weights reordered to `[o, 9c]`, in bands of rows so
/// that the copies stay within [`MAX_COLUMN_ELEMENTS`].
fn three_by_three(input: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    let [batch, channels, height, width] = input.dims();
    let outputs = weight.dims()[0];
    let weights = weight
        .permute([0, 2, 3, 1])
        .reshape([1, outputs, 9 * channels]);
    let padded = input.pad((1, 1, 1, 1), PadMode::Constant(0.0));
    let rows = (MAX_COLUMN_ELEMENTS / (batch * 9 * channels * width).max(1)).clamp(1, height);
    let bands: Vec<Tensor<4>> = (0..height)
        .step_by(rows)
        .map(|top| {
            let band = rows.min(height - top);
            let shifted: Vec<Tensor<4>> = (0..3)
                .flat_map(|dy| (0..3).map(move |dx| (dy, dx)))
                .map(|(dy, dx)| {
                    padded.clone().slice([
                        0..batch,
                        0..channels,
                        top + dy..top + dy + band,
                        dx..dx + width,
                    ])
                })
                .collect();
            let columns = Tensor::cat(shifted, 1).reshape([batch, 9 * channels, band * width]);
            with_bias(weights.clone().matmul(columns), bias.clone())
                .reshape([batch, outputs, band, width])
        })
        .collect();
    if bands.len() == 1 {
        bands.into_iter().next().expect("one band")
    } else {
        Tensor::cat(bands, 2)
    }
}

fn with_bias(product: Tensor<3>, bias: Option<Tensor<1>>) -> Tensor<3> {
    match bias {
        Some(bias) => {
            let outputs = bias.dims()[0];
            product + bias.reshape([1, outputs, 1])
        }
        None => product,
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::Distribution;

    use super::*;
    use crate::device::ComputeBackend;

    fn max_relative_difference(expected: Tensor<4>, actual: Tensor<4>) -> f32 {
        let scale = expected.clone().abs().max().into_scalar::<f32>();
        (expected - actual).abs().max().into_scalar::<f32>() / scale
    }

    #[test]
    fn matmul_convolutions_match_burns_kernel() {
        let device = ComputeBackend::Cpu.device();
        for (kernel, padding, bias) in [(3, 1, true), (3, 1, false), (1, 0, true)] {
            let conv = Conv2dConfig::new([5, 7], [kernel, kernel])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .with_bias(bias)
                .init(&device);
            let input = Tensor::<4>::random([2, 5, 6, 9], Distribution::Normal(0.0, 1.0), &device);
            let difference =
                max_relative_difference(conv.forward(input.clone()), through_matmuls(&conv, input));
            assert!(difference < 1e-5, "{kernel}×{kernel}: {difference}");
        }
    }

    #[test]
    fn large_maps_are_convolved_in_bands_of_rows() {
        let device = ComputeBackend::Cpu.device();
        let conv = Conv2dConfig::new([64, 8], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        // 9 · 64 · 256 values per row: 56 rows a band, so 3 bands over 150 rows.
        let input = Tensor::<4>::random([1, 64, 150, 256], Distribution::Normal(0.0, 1.0), &device);
        let rows = MAX_COLUMN_ELEMENTS / (9 * 64 * 256);
        assert!(150 / rows >= 2, "{rows} rows a band");
        let difference =
            max_relative_difference(conv.forward(input.clone()), through_matmuls(&conv, input));
        assert!(difference < 1e-5, "{difference}");
    }
}
