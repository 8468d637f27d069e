//! How fast the engine's kernels run on one backend, each as GFLOP/s and as a fraction of a large
//! matmul's rate: the 3×3 and 1×1 convolutions, attention and group norm of an SD-class UNet
//! level, plus a 3×3 convolution computed as im2col + matmul (the candidate replacement for
//! burn's direct convolution kernel, which is the only one it runs without autotune).
//!
//! `cargo run --release -p engine --example kernel_bench -- [cpu|gpu] [f32|f16] [RUNS]`
//! (`cargo xtask bench kernels` runs it, also with burn's `fusion`). One JSON line per kernel:
//! the best of RUNS after a warm-up run (which compiles the GPU kernels).

use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, PaddingConfig2d};
use burn::tensor::{Distribution, Tensor};
use engine::device::{ComputeBackend, Precision};
use engine::models::attention::scaled_dot_product;
use engine::models::conv;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let backend: ComputeBackend = args.first().map_or(ComputeBackend::Gpu, |name| {
        name.parse().expect("cpu or gpu")
    });
    let precision: Option<Precision> = args.get(1).map(|name| name.parse().expect("f32 or f16"));
    let runs: usize = args
        .get(2)
        .map_or(3, |runs| runs.parse().expect("RUNS is a number"));
    let (device, precision) = backend.device_with(precision).expect("the device");
    let random =
        |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let time = |run: &dyn Fn() -> Tensor<4>| {
        let _ = run().into_data();
        (0..runs)
            .map(|_| {
                device.sync().expect("the device is idle");
                let started = Instant::now();
                let output = run();
                device.sync().expect("the kernels finished");
                let elapsed = started.elapsed().as_secs_f64();
                drop(output);
                elapsed
            })
            .fold(f64::INFINITY, f64::min)
    };

    // One UNet level at 512² with SD 1.x/2.x's second level widths, scaled to run on a CPU-backed
    // Vulkan in seconds: 256 channels over a 32×32 map.
    let (channels, side) = (256, 32);
    let pixels = side * side;
    let map = random([1, channels, side, side]);

    let matmul_a = Tensor::<3>::random([1, 1024, 1024], Distribution::Normal(0.0, 1.0), &device);
    let matmul_b = Tensor::<3>::random([1, 1024, 1024], Distribution::Normal(0.0, 1.0), &device);
    let matmul_flops = 2.0 * 1024f64.powi(3);
    let matmul_s = time(&|| matmul_a.clone().matmul(matmul_b.clone()).unsqueeze());

    let conv3 = Conv2dConfig::new([channels, channels], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let conv3_flops = 2.0 * (channels * channels * 9 * pixels) as f64;
    let conv3_s = time(&|| conv3.forward(map.clone()));
    let im2col_s = time(&|| conv::through_matmuls(&conv3, map.clone()));
    let im2col_error = {
        let direct = conv3.forward(map.clone());
        let gemm = conv::through_matmuls(&conv3, map.clone());
        let scale: f32 = direct.clone().abs().max().into_scalar::<f32>();
        let error: f32 = (direct - gemm).abs().max().into_scalar::<f32>();
        error / scale
    };

    let conv1 = Conv2dConfig::new([channels, channels], [1, 1]).init(&device);
    let wide = random([1, channels, 2 * side, 2 * side]);
    let conv1_flops = 2.0 * (channels * channels * 4 * pixels) as f64;
    let conv1_s = time(&|| conv1.forward(wide.clone()));
    let pointwise_s = time(&|| conv::through_matmuls(&conv1, wide.clone()));

    // Self-attention over the 64² map of a 512² picture's first level: 4096 tokens, 5 heads of
    // 64 (SD-Turbo's first level), as the engine slices it.
    let (tokens, heads, head_dim) = (4096, 5, 64);
    let queries = Tensor::<3>::random(
        [1, tokens, heads * head_dim],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let attention_flops = 4.0 * (heads * tokens * tokens * head_dim) as f64;
    let attention_s = time(&|| {
        scaled_dot_product(queries.clone(), queries.clone(), queries.clone(), heads).unsqueeze()
    });

    let norm = GroupNormConfig::new(32, channels).init(&device);
    // Mean, variance, normalise, scale and shift: about 8 operations per value.
    let norm_flops = 8.0 * (channels * 4 * pixels) as f64;
    let norm_s = time(&|| norm.forward(wide.clone()));

    let rate = |flops: f64, seconds: f64| flops / seconds / 1e9;
    let matmul_rate = rate(matmul_flops, matmul_s);
    let rows = [
        ("matmul 1024³", matmul_flops, matmul_s),
        ("conv 3×3, 256→256 over 32², direct", conv3_flops, conv3_s),
        (
            "conv 3×3, 256→256 over 32², im2col + matmul",
            conv3_flops,
            im2col_s,
        ),
        ("conv 1×1, 256→256 over 64², direct", conv1_flops, conv1_s),
        (
            "conv 1×1, 256→256 over 64², as a matmul",
            conv1_flops,
            pointwise_s,
        ),
        (
            "attention 4096×4096, 5 heads of 64",
            attention_flops,
            attention_s,
        ),
        ("group norm, 32 groups, 256 × 64²", norm_flops, norm_s),
    ];
    for (kernel, flops, seconds) in rows {
        println!(
            "{{\"kernel\":\"{kernel}\",\"backend\":\"{backend:?}\",\"precision\":\"{precision}\",\"ms\":{:.1},\"gflops\":{:.2},\"of_matmul\":{:.2}}}",
            seconds * 1e3,
            rate(flops, seconds),
            rate(flops, seconds) / matmul_rate
        );
    }
    println!("{{\"im2col_max_relative_difference\":{im2col_error:e}}}");
}
