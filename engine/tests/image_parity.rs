//! The image side is the same function as diffusers: UNets of three layouts and the VAE, on tiny
//! random models (golden: models/make_image_fixtures.py).

mod common;

use common::{device, golden_burn, golden_tensor, model, relative_l2, values};
use engine::loaders::files::block_on;
use engine::models::unet_2d::UNet2DConditionModel;

const GOLDEN: &str = "image-golden.safetensors";
const TOLERANCE: f64 = 1e-4;

fn assert_unet_matches(name: &str) {
    let (unet, config) =
        block_on(UNet2DConditionModel::load(&model(name), None, &device())).unwrap();
    let sample = golden_burn::<4>(GOLDEN, &format!("{name}.unet.sample"));
    let context = golden_burn::<3>(GOLDEN, &format!("{name}.unet.context"));
    let condition = config
        .time_cond_proj_dim
        .map(|_| golden_burn::<2>(GOLDEN, &format!("{name}.unet.timestep_cond")));
    let output = values(unet.forward(sample, 751.0, &context, condition));
    let error = relative_l2(
        &output,
        &golden_tensor(GOLDEN, &format!("{name}.unet.output")),
    );
    eprintln!("{name} UNet: relative L2 error {error:e}");
    assert!(error <= TOLERANCE, "{name} UNet: relative L2 error {error}");
}

#[test]
fn unet_matches_diffusers_sd2_linear_projection_per_block_heads() {
    assert_unet_matches("tiny-sd2");
}

#[test]
fn unet_matches_diffusers_sd1_conv_projection_lcm_time_condition() {
    assert_unet_matches("tiny-sd1");
}

#[test]
fn unet_matches_diffusers_sdxs_without_mid_block() {
    assert_unet_matches("tiny-sdxs");
}

#[test]
fn vae_encoder_and_decoder_match_diffusers() {
    let (vae, config) = block_on(engine::models::vae::AutoencoderKL::load(
        &model("tiny-sd2"),
        None,
        &device(),
    ))
    .unwrap();
    assert_eq!(config.scaling_factor, 0.18215);
    let image = golden_burn::<4>(GOLDEN, "tiny-sd2.vae.image");
    let mean = values(vae.encode_mean(image));
    let error = relative_l2(&mean, &golden_tensor(GOLDEN, "tiny-sd2.vae.latent_mean"));
    eprintln!("VAE encoder: relative L2 error {error:e}");
    assert!(error <= TOLERANCE, "VAE encoder: relative L2 error {error}");
    let decoded = values(vae.decode(golden_burn::<4>(GOLDEN, "tiny-sd2.vae.latents")));
    let error = relative_l2(&decoded, &golden_tensor(GOLDEN, "tiny-sd2.vae.decoded"));
    eprintln!("VAE decoder: relative L2 error {error:e}");
    assert!(error <= TOLERANCE, "VAE decoder: relative L2 error {error}");
}

#[test]
fn taesd_encoder_and_decoder_match_diffusers() {
    let (vae, info) = block_on(engine::models::vae::Vae::load(
        &model("tiny-sd1"),
        None,
        &device(),
    ))
    .unwrap();
    assert!(matches!(vae, engine::models::vae::Vae::Tiny(_)));
    assert_eq!(info.scaling_factor, 1.0);
    let latents = values(vae.encode(golden_burn::<4>(GOLDEN, "tiny-sd1.vae.image")));
    let error = relative_l2(&latents, &golden_tensor(GOLDEN, "tiny-sd1.vae.latent_mean"));
    eprintln!("TAESD encoder: relative L2 error {error:e}");
    assert!(
        error <= TOLERANCE,
        "TAESD encoder: relative L2 error {error}"
    );
    let decoded = values(vae.decode(golden_burn::<4>(GOLDEN, "tiny-sd1.vae.latents")));
    let error = relative_l2(&decoded, &golden_tensor(GOLDEN, "tiny-sd1.vae.decoded"));
    eprintln!("TAESD decoder: relative L2 error {error:e}");
    assert!(
        error <= TOLERANCE,
        "TAESD decoder: relative L2 error {error}"
    );
}

#[test]
fn unet_loads_the_diffusers_fp16_variant() {
    let name = "tiny-sd2";
    let (unet, _) = block_on(UNet2DConditionModel::load(
        &model(name),
        Some("fp16"),
        &device(),
    ))
    .unwrap();
    let sample = golden_burn::<4>(GOLDEN, &format!("{name}.unet.sample"));
    let context = golden_burn::<3>(GOLDEN, &format!("{name}.unet.context"));
    let output = values(unet.forward(sample, 751.0, &context, None));
    let error = relative_l2(
        &output,
        &golden_tensor(GOLDEN, &format!("{name}.unet.fp16_output")),
    );
    eprintln!("{name} UNet, fp16 variant: relative L2 error {error:e}");
    assert!(error <= TOLERANCE, "relative L2 error {error}");
}

/// SDXS-512's real layout (issue 17): three cross-attention levels, no mid block, and
/// `only_cross_attention` on the first (golden: models/make_sdxs_fixtures.py).
#[test]
fn unet_matches_diffusers_in_sdxs_512_layout_only_cross_attention() {
    const SDXS_GOLDEN: &str = "tiny-sdxs-512-golden.safetensors";
    let (unet, config) = block_on(UNet2DConditionModel::load(
        &model("tiny-sdxs-512"),
        None,
        &device(),
    ))
    .unwrap();
    assert!(config.mid_block_type.is_none());
    let output = values(unet.forward(
        golden_burn::<4>(SDXS_GOLDEN, "sample"),
        999.0,
        &golden_burn::<3>(SDXS_GOLDEN, "context"),
        None,
    ));
    let error = relative_l2(&output, &golden_tensor(SDXS_GOLDEN, "output"));
    eprintln!("tiny-sdxs-512 UNet: relative L2 error {error:e}");
    assert!(error <= TOLERANCE, "relative L2 error {error}");
}
