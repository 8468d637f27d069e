//! Text to image, as a numbered recipe (diffusers' `StableDiffusionPipeline`):
//! 1 encode the prompt, 2 timesteps, 3 initial latents, 4 the denoising loop, 5 decode.

use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use web_time::Instant;

use crate::device::{compute_dtype, read_values, upcast};
use crate::error::{EngineError, Result};
use crate::loaders::files::ModelFiles;
use crate::loaders::textual_inversion::TextualInversion;
use crate::models::embeddings::timestep_features;
use crate::models::lora::{AdaptableLayers, ScaledLora};
use crate::models::unet_2d::UNet2DConditionModel;
use crate::models::vae::Vae;
use crate::pipelines::prompt::PromptEncoder;
use crate::schedulers::{Scheduler, SchedulerConfig, SchedulerKind};

/// Everything that decides a picture. Same request, same seed: same picture.
#[derive(Clone, Debug)]
pub struct GenerationRequest {
    pub prompt: String,
    pub negative_prompt: String,
    pub steps: usize,
    /// Classifier-free guidance scale; at 1 or below the unconditional pass is skipped.
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    /// Overrides the folder's scheduler.
    pub scheduler: Option<SchedulerKind>,
    /// `[1, 4, h/8, w/8]` starting noise (diffusers' `latents=`); drawn from `seed` when absent.
    pub noise: Option<Vec<f32>>,
}

impl GenerationRequest {
    /// What any model could draw: a size in multiples of 8 up to
    /// [`MAX_PICTURE_SIDE`](crate::loaders::limits::MAX_PICTURE_SIDE), and a finite guidance scale. The
    /// step count is checked against the scheduler.
    pub fn check(&self) -> std::result::Result<(), String> {
        let side = crate::loaders::limits::MAX_PICTURE_SIDE;
        let (width, height) = (self.width, self.height);
        if width == 0
            || height == 0
            || !width.is_multiple_of(8)
            || !height.is_multiple_of(8)
            || width > side
            || height > side
        {
            return Err(format!(
                "width and height must be multiples of 8 from 8 to {side}, not {width}×{height}"
            ));
        }
        if !self.guidance.is_finite() || self.guidance < 0.0 {
            return Err(format!(
                "the guidance scale must be a number of 0 or more, not {}",
                self.guidance
            ));
        }
        Ok(())
    }
}

const SCHEDULER_CONFIG: &str = "scheduler/scheduler_config.json";

/// Checks a diffusers folder's small files — `model_index.json` when present, every
/// component's config, the tokenizer, the scheduler (which must be one the engine has) —
/// without reading any weights: what the app runs on a model's first few kilobytes, before it
/// downloads gigabytes.
pub async fn check_model(files: &impl ModelFiles) -> Result<()> {
    check_index(files).await?;
    files
        .config::<crate::models::unet_2d::UNet2DConditionConfig>(
            "unet/config.json",
            "the UNet's configuration",
        )
        .await?;
    crate::models::vae::check_config(files).await?;
    files
        .config::<crate::models::clip::ClipTextConfig>(
            "text_encoder/config.json",
            "the text encoder's configuration",
        )
        .await?;
    crate::models::clip::ClipTokenizer::from_model(files).await?;
    let scheduler: SchedulerConfig = files
        .config(SCHEDULER_CONFIG, "the scheduler's configuration")
        .await?;
    scheduler
        .supported_kind()
        .map_err(|problem| EngineError::Config {
            path: files.display_path(SCHEDULER_CONFIG),
            problem,
        })?;
    Ok(())
}

/// `model_index.json`, when the folder has one, names component classes the engine runs.
async fn check_index(files: &impl ModelFiles) -> Result<()> {
    if let Some(bytes) = files.read("model_index.json").await? {
        let path = files.display_path("model_index.json");
        let index: std::collections::BTreeMap<String, serde_json::Value> =
            crate::loaders::files::parse_json(&bytes, &path, "the pipeline's index")?;
        let class = |component: &str| {
            index
                .get(component)
                .and_then(|value| value.get(1))
                .and_then(|class| class.as_str())
                .map(str::to_owned)
        };
        let expected = [
            ("unet", &["UNet2DConditionModel"][..]),
            ("vae", &["AutoencoderKL", "AutoencoderTiny"][..]),
            ("text_encoder", &["CLIPTextModel"][..]),
        ];
        for (component, classes) in expected {
            if let Some(class) = class(component)
                && !classes.contains(&class.as_str())
            {
                return Err(EngineError::Config {
                    path,
                    problem: format!(
                        "its {component} is a `{class}`, which this app cannot run (it runs {})",
                        classes.join(" or ")
                    ),
                });
            }
        }
    }
    Ok(())
}

/// What the loop reports after each step; returning `false` cancels.
pub struct Progress {
    pub step: usize,
    pub steps: usize,
}

/// Wall-clock time of each stage, in milliseconds. Every stage ends by reading its result back
/// from the device, so GPU work is counted where it happens.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageTimings {
    pub text_ms: f64,
    pub unet_ms: Vec<f64>,
    pub decode_ms: f64,
}

/// The result: final latents (before decoding) and the picture.
pub struct Generated {
    /// `[1, 4, h/8, w/8]` values.
    pub latents: Vec<f32>,
    pub latent_shape: [usize; 4],
    /// RGB bytes, `height × width × 3`.
    pub rgb: Vec<u8>,
    pub width: usize,
    pub height: usize,
    pub timings: StageTimings,
}

/// A loaded text-to-image model.
pub struct StableDiffusion {
    pub text: PromptEncoder,
    /// The UNet as loaded; LoRAs never change it.
    pub unet: UNet2DConditionModel,
    /// The UNet with LoRAs, when there are any (see [`set_loras`](Self::set_loras)): generation
    /// uses it instead of `unet`. Avatar training sets it for its previews.
    pub adapted_unet: Option<UNet2DConditionModel>,
    pub vae: Vae,
    scheduler_config: SchedulerConfig,
    default_scheduler: Option<SchedulerKind>,
    time_condition_dim: Option<usize>,
    latent_channels: usize,
    scaling_factor: f64,
    device: Device,
}

impl StableDiffusion {
    /// Where the model's tensors live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Loads a diffusers folder (`tokenizer/`, `text_encoder/`, `unet/`, `vae/`, `scheduler/`).
    pub async fn load(
        files: &impl ModelFiles,
        variant: Option<&str>,
        device: &Device,
    ) -> Result<Self> {
        Self::load_with_decoder(files, files, variant, device).await
    }

    /// Like [`load`](Self::load), with `vae/` taken from `decoder` instead: a fast decoder such
    /// as TAESD (see [`crate::loaders::files::AsComponent`] for a repo that holds just the decoder).
    pub async fn load_with_decoder(
        files: &impl ModelFiles,
        decoder: &impl ModelFiles,
        variant: Option<&str>,
        device: &Device,
    ) -> Result<Self> {
        check_index(files).await?;
        let text = PromptEncoder::load(files, variant, device).await?;
        let (unet, unet_config) = UNet2DConditionModel::load(files, variant, device).await?;
        let (vae, vae_info) = Vae::load(decoder, variant, device).await?;
        let scheduler_config: SchedulerConfig = files
            .config(SCHEDULER_CONFIG, "the scheduler's configuration")
            .await?;
        Ok(StableDiffusion {
            default_scheduler: SchedulerKind::from_class_name(&scheduler_config.class_name),
            scheduler_config,
            time_condition_dim: unet_config.time_cond_proj_dim,
            latent_channels: vae_info.latent_channels,
            scaling_factor: vae_info.scaling_factor,
            text,
            unet,
            adapted_unet: None,
            vae,
            device: device.clone(),
        })
    }

    /// The model with no weight keeping a gradient (text encoder, UNet, VAE), for training on an
    /// autodiff device: only the avatar's vectors then build a graph. The VAE too, since it
    /// encodes the photos and draws the previews on that device.
    pub fn frozen(self) -> Self {
        use burn::module::Module;
        let mut text = self.text;
        text.text_encoder = text.text_encoder.no_grad();
        StableDiffusion {
            text,
            unet: self.unet.no_grad(),
            vae: self.vae.no_grad(),
            ..self
        }
    }

    /// Decodes with `decoder`'s `vae/` from now on (a fast decoder for training previews, once
    /// the photos are encoded with the model's own VAE); its weights keep no gradient.
    pub async fn replace_decoder(&mut self, decoder: &impl ModelFiles) -> Result<()> {
        let (vae, info) = Vae::load(decoder, None, &self.device).await?;
        if info.latent_channels != self.latent_channels {
            return Err(EngineError::Usage(format!(
                "{} decodes {} latent channels, but the model makes {}",
                decoder.display_path("vae/config.json").display(),
                info.latent_channels,
                self.latent_channels
            )));
        }
        self.vae = vae.no_grad();
        self.scaling_factor = info.scaling_factor;
        Ok(())
    }

    pub fn scheduler_config(&self) -> &SchedulerConfig {
        &self.scheduler_config
    }

    /// The VAE's latent scaling factor (diffusers' `vae.config.scaling_factor`).
    pub fn scaling_factor(&self) -> f64 {
        self.scaling_factor
    }

    pub fn add_embedding(
        &mut self,
        embedding: &TextualInversion,
        source: &std::path::Path,
    ) -> Result<()> {
        self.text.add_embedding(embedding, source)
    }

    /// Draws with `loras` (each file at its scale, on the UNet and the text encoder) from now on,
    /// merged into copies of the adapted weights; an empty list draws without. Any file that
    /// does not fit the model is refused, and then nothing changes.
    pub fn set_loras(&mut self, loras: &[ScaledLora]) -> Result<()> {
        let layers = AdaptableLayers::of_unet(&self.unet);
        let unet = crate::models::lora::adapt(&self.unet, &layers, loras, &self.device, true)?;
        self.text.set_loras(loras)?;
        self.adapted_unet = unet;
        Ok(())
    }

    /// Runs the recipe; `progress` is called after every step and cancels by returning `false`.
    ///
    /// Each step ends with an asynchronous read of the latents (a few KB): it measures the step,
    /// and in the browser it hands the event loop a turn, so a cancel message gets through.
    pub async fn generate(
        &self,
        request: &GenerationRequest,
        mut progress: impl FnMut(Progress) -> bool,
    ) -> Result<Generated> {
        request.check().map_err(EngineError::Usage)?;
        let shape = [
            1,
            self.latent_channels,
            request.height / 8,
            request.width / 8,
        ];
        let mut rng = StdRng::seed_from_u64(request.seed);
        let model_dtype = compute_dtype(&self.device);
        let mut timings = StageTimings::default();
        let started = Instant::now();

        // 1. Encode the prompt. Guidance above 1 needs the negative (or empty) prompt too, except
        //    for LCM-style models, which take the guidance scale as an embedding instead.
        let guided = request.guidance > 1.0 && self.time_condition_dim.is_none();
        let context = if guided {
            self.text
                .encode(&[request.negative_prompt.as_str(), request.prompt.as_str()])?
        } else {
            self.text.encode(&[request.prompt.as_str()])?
        };
        let condition = self
            .time_condition_dim
            .map(|dim| guidance_embedding(request.guidance - 1.0, dim, &self.device));
        read_values(context.clone()).await?;
        timings.text_ms = elapsed_ms(started);

        // 2. Timesteps.
        let kind = request
            .scheduler
            .or(self.default_scheduler)
            .ok_or_else(|| {
                EngineError::Usage(format!(
                    "the model's scheduler `{}` is not supported; choose one with --scheduler",
                    self.scheduler_config.class_name
                ))
            })?;
        let scheduler = Scheduler::new(kind, &self.scheduler_config, request.steps)?;

        // 3. Initial latents, scaled to the scheduler's starting noise level.
        let noise = match &request.noise {
            Some(noise) if noise.len() == shape.iter().product::<usize>() => noise.clone(),
            Some(noise) => {
                return Err(EngineError::Usage(format!(
                    "the noise has {} values but a {}×{} picture needs {shape:?}",
                    noise.len(),
                    request.width,
                    request.height
                )));
            }
            None => gaussian(&mut rng, shape.iter().product()),
        };
        let mut latents = self.tensor(noise, shape) * scheduler.init_noise_sigma();

        // 4. The denoising loop.
        let unet = self.adapted_unet.as_ref().unwrap_or(&self.unet);
        let steps = scheduler.timesteps().len();
        for (index, &timestep) in scheduler.timesteps().iter().enumerate() {
            let step_started = Instant::now();
            // The latents and the scheduler's arithmetic stay in f32 (as diffusers' schedulers
            // upcast); only the UNet runs in the model's type.
            let input = (latents.clone() * scheduler.input_scale(index)).cast(model_dtype);
            let input = if guided {
                Tensor::cat(vec![input.clone(), input], 0)
            } else {
                input
            };
            let prediction = upcast(unet.forward(input, timestep, &context, condition.clone()));
            let prediction = if guided {
                let mut halves = prediction.chunk(2, 0);
                let conditioned = halves.pop().expect("two halves");
                let unconditioned = halves.pop().expect("two halves");
                unconditioned.clone() + (conditioned - unconditioned) * request.guidance
            } else {
                prediction
            };
            let step = scheduler.step(index);
            let mut next = latents * step.sample + prediction * step.model_output;
            if step.needs_noise() {
                next = next
                    + self.tensor(gaussian(&mut rng, shape.iter().product()), shape) * step.noise;
            }
            latents = next;
            read_values(latents.clone()).await?;
            timings.unet_ms.push(elapsed_ms(step_started));
            crate::runtime::yield_now().await;
            if !progress(Progress {
                step: index + 1,
                steps,
            }) {
                return Err(EngineError::Cancelled);
            }
        }

        // 5. Decode to a picture.
        let decode_started = Instant::now();
        let latent_values = read_values(latents.clone()).await?;
        let image = upcast(
            self.vae
                .decode((latents / self.scaling_factor).cast(model_dtype)),
        );
        let pixels = read_values(
            ((image / 2.0 + 0.5).clamp(0.0, 1.0) * 255.0)
                .round()
                .permute([0, 2, 3, 1]),
        )
        .await?;
        timings.decode_ms = elapsed_ms(decode_started);
        Ok(Generated {
            latents: latent_values,
            latent_shape: shape,
            rgb: pixels.into_iter().map(|value| value as u8).collect(),
            width: request.width,
            height: request.height,
            timings,
        })
    }

    /// An f32 tensor, whatever the model's type: latents and noise.
    fn tensor(&self, values: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values, shape), (&self.device, DType::F32))
    }
}

/// LCM's `get_guidance_scale_embedding`: the same sinusoidal features as a timestep's, of
/// `1000 · scale`, sines first, frequencies spread over `half − 1`.
fn guidance_embedding(scale: f64, dim: usize, device: &Device) -> Tensor<2> {
    timestep_features(&[scale * 1000.0], dim, false, 1.0, device)
}

/// Standard normal draws from the request's seeded generator.
pub fn gaussian(rng: &mut StdRng, count: usize) -> Vec<f32> {
    (0..count).map(|_| StandardNormal.sample(rng)).collect()
}

pub fn elapsed_ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
