//! What the default fast decoder saves per picture: SD-Turbo's own VAE decoder (AutoencoderKL,
//! SD 2.x shapes) against TAESD (AutoencoderTiny, madebyollin/taesd's shapes), both with random
//! weights in their real shapes, decoding the same latents at one picture size.
//!
//! `cargo run --release -p engine --example decode_bench -- [SIZE] [cpu|gpu] [RUNS] [f32|f16]`
//! (`cargo xtask bench decode` runs it). Prints one JSON line per decoder: the best of RUNS.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use engine::device::ComputeBackend;
use engine::models::autoencoder_tiny::AutoencoderTinyConfig;
use engine::models::vae::AutoencoderKLConfig;

/// `stabilityai/sd-turbo`'s `vae/config.json` (the SD 2.x autoencoder), the fields the engine reads.
const SD_TURBO_VAE: &str = r#"{
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "latent_channels": 4,
    "norm_num_groups": 32, "scaling_factor": 0.18215
}"#;
/// `madebyollin/taesd`'s `config.json`: the engine's defaults are exactly TAESD's.
const TAESD: &str = "{}";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size: usize = args
        .first()
        .map_or(512, |size| size.parse().expect("SIZE is a number"));
    let backend: ComputeBackend = args.get(1).map_or(ComputeBackend::Cpu, |name| {
        name.parse().expect("cpu or gpu")
    });
    let runs: usize = args
        .get(2)
        .map_or(2, |runs| runs.parse().expect("RUNS is a number"));
    let precision = args.get(3).map(|name| name.parse().expect("f32 or f16"));
    let (device, precision) = backend.device_with(precision).expect("the device");
    let latents = || {
        Tensor::<4>::random(
            [1, 4, size / 8, size / 8],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
    };
    let kl: AutoencoderKLConfig =
        serde_json::from_str(SD_TURBO_VAE).expect("the VAE config parses");
    let kl = kl.init(&device);
    let tiny: AutoencoderTinyConfig = serde_json::from_str(TAESD).expect("the TAESD config parses");
    let tiny = tiny.init(&device);
    let time = |decode: &dyn Fn(Tensor<4>) -> Tensor<4>| {
        (0..runs)
            .map(|_| {
                let input = latents();
                let _ = input.clone().into_data();
                let started = Instant::now();
                let picture = decode(input);
                let _ = picture.into_data();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .fold(f64::INFINITY, f64::min)
    };
    let full_ms = time(&|latents| kl.decode(latents));
    let fast_ms = time(&|latents| tiny.decode(latents));
    for (decoder, ms) in [("sd-turbo-vae", full_ms), ("taesd", fast_ms)] {
        println!(
            "{{\"decoder\":\"{decoder}\",\"size\":{size},\"backend\":\"{backend:?}\",\"precision\":\"{precision}\",\"runs\":{runs},\"best_ms\":{ms:.0}}}"
        );
    }
    println!("{{\"full_over_fast\":{:.1}}}", full_ms / fast_ms);
}
