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
use engine::models::attention::{attend, flash_on_the_gpu, sliced};
use engine::models::attention_training::recomputed_in_backward;
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
    // The best of RUNS, and the first run before them (kernel compilation, and tuning in builds
    // with burn's `autotune`).
    let time = |run: &dyn Fn() -> Tensor<4>| {
        device.sync().expect("the device is idle");
        let started = Instant::now();
        let _ = run().into_data();
        let first = started.elapsed().as_secs_f64();
        let best = (0..runs)
            .map(|_| {
                device.sync().expect("the device is idle");
                let started = Instant::now();
                let output = run();
                device.sync().expect("the kernels finished");
                let elapsed = started.elapsed().as_secs_f64();
                drop(output);
                elapsed
            })
            .fold(f64::INFINITY, f64::min);
        Timing { best, first }
    };
    let relative_difference = |reference: Tensor<4>, other: Tensor<4>| {
        let reference = reference.cast(burn::tensor::FloatDType::F32);
        let other = other.cast(burn::tensor::FloatDType::F32);
        let scale: f32 = reference.clone().abs().max().into_scalar::<f32>();
        let error: f32 = (reference - other).abs().max().into_scalar::<f32>();
        error / scale
    };

    // Training's attention: the first level's self-attention at 256² and 512² (5 heads of 64),
    // forward and backward (the query's gradient), differentiated as ordinary operations over
    // the slices (which keeps every slice's scores and softmax for the backward pass) against
    // the engine's training path (forward outside the graph, scores recomputed slice by slice
    // in the backward pass); and what the graph holds between the two passes.
    let training = device.clone().autodiff();
    let mut training_rows = Vec::new();
    for tokens in [1024usize, 4096] {
        let (heads, head_dim) = (5usize, 64usize);
        let tracked = || {
            Tensor::<4>::random(
                [1, heads, tokens, head_dim],
                Distribution::Normal(0.0, 1.0),
                &training,
            )
            .require_grad()
        };
        let (query, key, value) = (tracked(), tracked(), tracked());
        // Forward (4·h·n²·d) and backward (twice the forward's matmuls).
        let flops = 12.0 * (heads * tokens * tokens * head_dim) as f64;
        let forward = |recompute: bool| {
            if recompute {
                recomputed_in_backward(&query, &key, &value, attend)
                    .expect("training's attention runs")
            } else {
                sliced(query.clone(), key.clone(), value.clone())
            }
        };
        let pass = |recompute: bool| {
            let gradients = forward(recompute).sum().backward();
            query.grad(&gradients).expect("a gradient for the query")
        };
        let difference = relative_difference(pass(false), pass(true));
        for (path, recompute) in [("scores recomputed", true), ("scores kept", false)] {
            let timing = time(&|| pass(recompute));
            let before = bytes_in_use(&device);
            let output = forward(recompute);
            let held = bytes_in_use(&device) - before;
            drop(output);
            let label = format!("training self-attention {tokens}×{tokens}, 5 heads of 64, {path}");
            eprintln!(
                "{label}: {:.0} ms, {:.0} MiB held for the backward pass",
                timing.best * 1e3,
                held / 1048576.0
            );
            training_rows.push((label, flops, timing, held, difference));
        }
    }

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
    let im2col_error = relative_difference(
        conv3.forward(map.clone()),
        conv::through_matmuls(&conv3, map.clone()),
    );

    let conv1 = Conv2dConfig::new([channels, channels], [1, 1]).init(&device);
    let wide = random([1, channels, 2 * side, 2 * side]);
    let conv1_flops = 2.0 * (channels * channels * 4 * pixels) as f64;
    let conv1_s = time(&|| conv1.forward(wide.clone()));
    let pointwise_s = time(&|| conv::through_matmuls(&conv1, wide.clone()));

    // Attention at 512²: the first level's self-attention over the 64² map (4096 tokens, 5 heads
    // of 64: SD-Turbo) and its cross-attention to the prompt's 77 tokens; SD 1.x's heads of 40,
    // 80 and 160 at their levels; each sliced as the engine did before and by burn's flash
    // kernel. (The VAE's one 512-wide head is left to the slices: flash ran over a minute on
    // lavapipe where the slices took 167 ms at 32².)
    let attention_cases = [
        ("self-attention 4096×4096, 5 heads of 64", 5, 64, 4096, 4096),
        ("cross-attention 4096×77, 5 heads of 64", 5, 64, 4096, 77),
        ("self-attention 4096×4096, 8 heads of 40", 8, 40, 4096, 4096),
        ("self-attention 1024×1024, 8 heads of 80", 8, 80, 1024, 1024),
        ("self-attention 256×256, 8 heads of 160", 8, 160, 256, 256),
    ];
    let mut attention_rows = Vec::new();
    let mut flash_differences = Vec::new();
    for (label, heads, head_dim, queries, keys) in attention_cases {
        let query = random([1, heads, queries, head_dim]);
        let (key, value) = (
            random([1, heads, keys, head_dim]),
            random([1, heads, keys, head_dim]),
        );
        let flops = 4.0 * (heads * queries * keys * head_dim) as f64;
        let slices = || sliced(query.clone(), key.clone(), value.clone());
        let timing = time(&slices);
        eprintln!("{label}, sliced: {:.0} ms", timing.best * 1e3);
        attention_rows.push((format!("{label}, sliced"), flops, timing));
        let flash = || flash_on_the_gpu(&query, &key, &value);
        device.sync().expect("the device is idle");
        let started = Instant::now();
        let first = flash().map(|context| context.into_data());
        let first_s = started.elapsed().as_secs_f64();
        if first.is_some() {
            // The first run (compiling this shape's kernel) is the one above.
            let timing = Timing {
                first: first_s,
                ..time(&|| flash().expect("flash ran before"))
            };
            eprintln!("{label}, flash: {:.0} ms", timing.best * 1e3);
            attention_rows.push((format!("{label}, burn's flash (unit)"), flops, timing));
            let difference = relative_difference(slices(), flash().expect("flash ran before"));
            flash_differences.push(format!("\"{label}\":{difference:e}"));
        }
    }

    let norm = GroupNormConfig::new(32, channels).init(&device);
    // Mean, variance, normalise, scale and shift: about 8 operations per value.
    let norm_flops = 8.0 * (channels * 4 * pixels) as f64;
    let norm_s = time(&|| norm.forward(wide.clone()));

    let rate = |flops: f64, seconds: f64| flops / seconds / 1e9;
    let matmul_rate = rate(matmul_flops, matmul_s.best);
    let mut rows: Vec<(String, f64, Timing)> = [
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
        ("group norm, 32 groups, 256 × 64²", norm_flops, norm_s),
    ]
    .into_iter()
    .map(|(kernel, flops, timing)| (kernel.to_string(), flops, timing))
    .collect();
    rows.extend(attention_rows);
    for (kernel, flops, timing) in rows {
        println!(
            "{{\"kernel\":\"{kernel}\",\"backend\":\"{backend:?}\",\"precision\":\"{precision}\",\"ms\":{:.1},\"first_ms\":{:.0},\"gflops\":{:.2},\"of_matmul\":{:.2}}}",
            timing.best * 1e3,
            timing.first * 1e3,
            rate(flops, timing.best),
            rate(flops, timing.best) / matmul_rate
        );
    }
    for (kernel, flops, timing, held, difference) in training_rows {
        println!(
            "{{\"kernel\":\"{kernel}\",\"backend\":\"{backend:?}\",\"precision\":\"{precision}\",\"ms\":{:.1},\"first_ms\":{:.0},\"gflops\":{:.2},\"of_matmul\":{:.2},\"held_for_backward_mib\":{:.0},\"gradient_max_relative_difference\":{difference:e}}}",
            timing.best * 1e3,
            timing.first * 1e3,
            rate(flops, timing.best),
            rate(flops, timing.best) / matmul_rate,
            held / 1048576.0
        );
    }
    println!("{{\"im2col_max_relative_difference\":{im2col_error:e}}}");
    println!(
        "{{\"flash_max_relative_difference\":{{{}}}}}",
        flash_differences.join(",")
    );
}

/// Bytes in the allocator's live tensors once the queued work has run (0 where the backend
/// keeps no pools).
fn bytes_in_use(device: &burn::tensor::Device) -> f64 {
    device.sync().expect("the kernels finished");
    device
        .memory_pool_usage()
        .map_or(0.0, |usage| usage.bytes_in_use as f64)
}

/// One kernel's time: the best of the timed runs, and the first run before them.
#[derive(Clone, Copy)]
struct Timing {
    best: f64,
    first: f64,
}
