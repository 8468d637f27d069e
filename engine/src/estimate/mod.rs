//! What a model will take on this device — time and memory for a picture and for an avatar —
//! before its weights are downloaded: the work counted from its configs ([`work`]) over the
//! rates a few seconds of kernels measured here ([`speed`]).
//!
//! The time of a pass is its arithmetic over the measured arithmetic rate, plus the bytes it
//! moves (its weights once, its activations written and read) over the measured memory rate,
//! plus its kernels times the measured cost of one. docs/benchmarks.md puts the estimates beside
//! measured times.

pub mod speed;
pub mod work;

use protocol::{AvatarWork, DeviceSpeed, Estimate, PictureWork};

use crate::device::Precision;
use crate::error::Result;
use crate::loaders::files::ModelFiles;
use crate::models::autoencoder_tiny::AutoencoderTinyConfig;
use crate::models::clip::ClipTextConfig;
use crate::models::unet_2d::UNet2DConditionConfig;
use crate::models::vae::AutoencoderKLConfig;
use work::Work;

/// WebAssembly's 32-bit memory: what the processor path has, whatever the device.
pub const WASM32_MEMORY_BYTES: u64 = 4 << 30;

/// Gradient checkpointing keeps about this share of the activations a backward pass would
/// (docs/benchmarks.md, "Gradient checkpointing").
const CHECKPOINTED_SHARE: f64 = 0.6;

/// Either autoencoder's configuration.
#[derive(Clone, Debug)]
pub enum Autoencoder {
    Kl(AutoencoderKLConfig),
    Tiny(AutoencoderTinyConfig),
}

impl Autoencoder {
    /// `vae/config.json` of `files`, as the class it names.
    pub async fn read(files: &impl ModelFiles) -> Result<Self> {
        let what = "the VAE's configuration";
        Ok(if crate::models::vae::is_tiny(files).await? {
            Autoencoder::Tiny(files.config("vae/config.json", what).await?)
        } else {
            Autoencoder::Kl(files.config("vae/config.json", what).await?)
        })
    }

    /// Decoding a latent of `size` (latent pixels).
    pub fn decoder(&self, size: (usize, usize)) -> Work {
        match self {
            Autoencoder::Kl(config) => work::vae_decoder(config, size),
            Autoencoder::Tiny(config) => work::tiny_decoder(config, size),
        }
    }

    /// Encoding a picture of `size` (pixels).
    pub fn encoder(&self, size: (usize, usize)) -> Work {
        match self {
            Autoencoder::Kl(config) => work::vae_encoder(config, size),
            Autoencoder::Tiny(config) => work::tiny_encoder(config, size),
        }
    }
}

/// A pipeline's shapes: all an estimate needs, read from a few KB of configs.
#[derive(Clone, Debug)]
pub struct PipelineShape {
    pub text: ClipTextConfig,
    pub unet: UNet2DConditionConfig,
    /// The model's own VAE, which encodes the avatar's photos.
    pub vae: Autoencoder,
    /// What pictures are decoded with (the app's fast decoder, or the VAE).
    pub decoder: Autoencoder,
}

impl PipelineShape {
    /// Reads the configs of `files`, with `decoder`'s VAE decoding pictures when given.
    pub async fn read(files: &impl ModelFiles, decoder: Option<&impl ModelFiles>) -> Result<Self> {
        let vae = Autoencoder::read(files).await?;
        let decoder = match decoder {
            Some(decoder) => Autoencoder::read(decoder).await?,
            None => vae.clone(),
        };
        Ok(PipelineShape {
            text: files
                .config(
                    "text_encoder/config.json",
                    "the text encoder's configuration",
                )
                .await?,
            unet: files
                .config("unet/config.json", "the UNet's configuration")
                .await?,
            vae,
            decoder,
        })
    }
}

/// How the model runs on the device an estimate is for.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    /// burn's CPU backend: weights held as stored, widened per layer; training in f16.
    pub processor: bool,
    /// Bytes of the type pictures are computed in (4: f32, 2: f16).
    pub compute_bytes: u64,
    /// Bytes per weight as the files store them.
    pub stored_bytes: u64,
}

impl Path {
    /// The path of a device computing in `compute` from files stored in `stored`.
    pub fn new(processor: bool, compute: Precision, stored: Precision) -> Path {
        let bytes = |precision: Precision| precision.dtype().size() as u64;
        Path {
            processor,
            compute_bytes: bytes(compute),
            stored_bytes: bytes(stored),
        }
    }

    /// Bytes per weight held in memory.
    fn held_bytes(self) -> u64 {
        if self.processor {
            self.stored_bytes
        } else {
            self.compute_bytes
        }
    }

    /// Bytes moved per weight read: the processor reads the stored weight and writes and reads
    /// its widened copy.
    fn weight_traffic(self) -> u64 {
        if self.processor && self.stored_bytes != self.compute_bytes {
            self.stored_bytes + 2 * self.compute_bytes
        } else {
            self.held_bytes()
        }
    }

    /// Bytes of the type avatars train in: f16 on the processor (f32 would keep every widened
    /// weight for the backward pass), the picture type on a GPU.
    fn training_bytes(self) -> u64 {
        if self.processor {
            2
        } else {
            self.compute_bytes
        }
    }
}

/// The rates a pass runs at on one path, and the bytes it moves per weight and per activation.
struct Rates<'a> {
    flops_per_second: f64,
    /// For products of few rows.
    narrow_flops_per_second: f64,
    speed: &'a DeviceSpeed,
    weight_bytes: u64,
    activation_bytes: u64,
}

impl Rates<'_> {
    /// Seconds of one pass of `work` over `batch` samples: its weights read once.
    fn seconds(&self, work: &Work, batch: f64) -> f64 {
        let moved = (work.params * self.weight_bytes) as f64
            + 2.0 * batch * (work.written * self.activation_bytes) as f64;
        batch * (work.flops - work.narrow_flops) / self.flops_per_second
            + batch * work.narrow_flops / self.narrow_flops_per_second
            + moved / self.speed.bytes_per_second
            + work.kernels as f64 * self.speed.seconds_per_kernel
    }
}

/// The estimate for `shape` on a device of `speed` taking `path`.
pub fn estimate(
    shape: &PipelineShape,
    path: Path,
    speed: &DeviceSpeed,
    picture: &PictureWork,
    avatar: &AvatarWork,
) -> Estimate {
    let text = work::clip_text(&shape.text);
    let latent = (picture.height / 8, picture.width / 8);
    let unet = work::unet(&shape.unet, latent);
    let decoder = shape.decoder.decoder(latent);
    let batch = if picture.guidance > 1.0 { 2.0 } else { 1.0 };
    let weights = (text.params + unet.params + decoder.params) * path.held_bytes();
    // Rates kept from before narrow products were timed: the wide rate for both.
    let narrow_share = speed
        .narrow_flops_per_second
        .map_or(1.0, |narrow| narrow / speed.flops_per_second);
    let drawing = Rates {
        flops_per_second: speed.flops_per_second,
        narrow_flops_per_second: speed.flops_per_second * narrow_share,
        speed,
        weight_bytes: path.weight_traffic(),
        activation_bytes: path.compute_bytes,
    };
    let picture_seconds = drawing.seconds(&text, batch)
        + picture.steps as f64 * drawing.seconds(&unet, batch)
        + drawing.seconds(&decoder, 1.0);
    let peak = [text, unet, decoder]
        .iter()
        .map(|work| work.peak_activations())
        .max()
        .unwrap_or(0);
    let widened = if path.processor {
        2 * unet.largest_weight.max(text.largest_weight) * path.compute_bytes
    } else {
        0
    };
    let picture_memory = weights + batch as u64 * peak * path.compute_bytes + widened;

    // An avatar: its photos encoded once, then each step a forward and a backward pass of the
    // text encoder and the UNet (and a forward again where checkpointing recomputes), and five
    // previews drawn at the training size.
    let side = if path.processor {
        avatar.resolution.min(protocol::CPU_AVATAR_RESOLUTION)
    } else {
        avatar.resolution
    };
    let training_latent = (side / 8, side / 8);
    let training_unet = work::unet(&shape.unet, training_latent);
    let encoder = shape.vae.encoder((side, side));
    let preview_decoder = shape.decoder.decoder(training_latent);
    let checkpointing = side >= 384;
    let passes = if checkpointing { 3.0 } else { 2.0 };
    let training_bytes = path.training_bytes();
    let held = if path.processor {
        path.stored_bytes
    } else {
        training_bytes
    };
    let training_rate = match (path.processor, speed.half_flops_per_second) {
        (true, Some(half)) => half,
        _ => speed.flops_per_second,
    };
    let learning = Rates {
        flops_per_second: training_rate,
        narrow_flops_per_second: training_rate * narrow_share,
        speed,
        weight_bytes: held,
        activation_bytes: training_bytes,
    };
    let step_seconds =
        passes * (learning.seconds(&text, 1.0) + learning.seconds(&training_unet, 1.0));
    let preview_seconds = learning.seconds(&text, 1.0)
        + learning.seconds(&training_unet, 1.0)
        + learning.seconds(&preview_decoder, 1.0);
    let avatar_seconds = avatar.photos as f64 * learning.seconds(&encoder, 1.0)
        + avatar.steps as f64 * step_seconds
        + 5.0 * preview_seconds;
    let kept = (training_unet.kept + text.kept) as f64
        * if checkpointing {
            CHECKPOINTED_SHARE
        } else {
            1.0
        };
    let encoder_weights = match &shape.vae {
        Autoencoder::Kl(_) => encoder.params,
        Autoencoder::Tiny(_) => 0,
    };
    let avatar_memory = (text.params + training_unet.params + encoder_weights + decoder.params)
        * held
        + (kept as u64 + encoder.peak_activations()) * training_bytes;
    let largest_buffer = unet.largest_weight.max(text.largest_weight) * path.compute_bytes;
    Estimate {
        picture_seconds,
        avatar_seconds,
        avatar_step_seconds: step_seconds,
        picture_memory_bytes: picture_memory,
        avatar_memory_bytes: avatar_memory,
        avatar_resolution: side,
        largest_buffer_bytes: largest_buffer,
        ..Estimate::default()
    }
}
