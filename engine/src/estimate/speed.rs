//! A few seconds of the model's own kernels on this device, timed: the rates an estimate divides
//! the counted work by ([`super::work`]). Run once per device and kept by the app.

use burn::tensor::{Device, Distribution, FloatDType, Tensor};
use protocol::DeviceSpeed;
use web_time::Instant;

use crate::device::{read_values, upcast};
use crate::error::Result;
use crate::models::{conv, resnet::conv3x3};

/// Each kernel is repeated until it has run at least this long (after a first run that compiles
/// it), so a fast GPU is timed over many launches and SwiftShader over one.
const MIN_SECONDS: f64 = 0.25;
const MAX_REPEATS: usize = 256;

/// Times the model's typical kernels on `device`, in the type it computes in: a linear layer's
/// matmul and a 3×3 convolution at SD-class widths (the arithmetic rate), a large addition (the
/// memory rate) and a chain of tiny additions (the cost of one kernel). With `half_too` (the
/// processor, which trains in f16), the matmul is timed in f16 as well.
pub async fn measure(device: &Device, half_too: bool) -> Result<DeviceSpeed> {
    let random = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Default, device);
    let (tokens, width) = (1024, 320);
    let (hidden, weight) = (random([tokens, width]), random([width, 4 * width]));
    let matmul_flops = 2.0 * (tokens * width * 4 * width) as f64;
    let matmul = time(|| hidden.clone().matmul(weight.clone())).await?;

    let layer = conv3x3(device, width, width);
    let map = Tensor::<4>::random([1, width, 16, 16], Distribution::Default, device);
    let conv_flops = 2.0 * (width * width * 9 * 16 * 16) as f64;
    let convolution = time(|| conv::forward(&layer, map.clone())).await?;
    let flops_per_second = (matmul_flops + conv_flops) / (matmul + convolution);

    // A prompt's 77 tokens through an MLP-sized weight (8 MB, past a CPU's nearer caches): few
    // rows fill few of a GPU kernel's tiles. Its share of the wide matmul's rate (never above
    // it) scales the combined rate for products of few rows.
    let (prompt, mlp) = (random([77, 1024]), random([1024, 2048]));
    let narrow_flops = 2.0 * (77 * 1024 * 2048) as f64;
    let narrow = time(|| prompt.clone().matmul(mlp.clone())).await?;
    let narrow_share = ((narrow_flops / narrow) / (matmul_flops / matmul)).min(1.0);

    let elements = 1 << 23;
    let (left, right) = (
        random([elements / 1024, 1024]),
        random([elements / 1024, 1024]),
    );
    // Two inputs read, the sum written, and read again by the reduction that syncs.
    let bytes = 4.0 * (elements * left.dtype().size()) as f64;
    let addition = time(|| left.clone() + right.clone()).await?;

    let tiny = random([8, 8]);
    let chain = 32;
    let chained = time(|| (0..chain).fold(tiny.clone(), |sum, _| sum + tiny.clone())).await?;

    let half_flops_per_second = if half_too {
        let (hidden, weight) = (hidden.cast(FloatDType::F16), weight.cast(FloatDType::F16));
        let seconds = time(|| upcast(hidden.clone().matmul(weight.clone()))).await?;
        Some(matmul_flops / seconds)
    } else {
        None
    };
    Ok(DeviceSpeed {
        flops_per_second,
        narrow_flops_per_second: Some(flops_per_second * narrow_share),
        bytes_per_second: bytes / addition,
        // The chain's additions, the reduction and the read-back.
        seconds_per_kernel: chained / (chain + 2) as f64,
        half_flops_per_second,
    })
}

/// Seconds one run of `kernel` takes: one run to compile, then as many as fill [`MIN_SECONDS`],
/// each result read back (a GPU queues work; reading waits for it).
async fn time<const D: usize>(kernel: impl Fn() -> Tensor<D>) -> Result<f64> {
    read_values(kernel()).await?;
    let started = Instant::now();
    let mut runs = 0;
    while runs < MAX_REPEATS {
        read_values(kernel().sum()).await?;
        runs += 1;
        if started.elapsed().as_secs_f64() >= MIN_SECONDS {
            break;
        }
    }
    Ok(started.elapsed().as_secs_f64() / runs as f64)
}
