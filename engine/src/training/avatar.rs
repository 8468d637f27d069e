//! Avatars: textual inversion of a child from a few photos, trained on the device.
//!
//! What trains is only the new token's vectors (`<mia>`, `<mia>_1`, …, diffusers' multi-vector
//! naming), held as their own parameter ([`TokenVectors`]); the text encoder and the UNet are
//! frozen and keep no gradients. Each step: a cached photo latent (or its mirror image), seeded
//! noise at a timestep, a prompt template with the token, the UNet's prediction against its
//! target (epsilon or v, per the model's `prediction_type`), MSE, plus a regulariser that keeps the
//! vectors near their start. AdamW updates the vectors.
//!
//! Choices, and why:
//! - **Initialisation (CrossInit, Pang et al. 2024)**: the vectors start from the text encoder's
//!   *output* for the class words ("toddler"; the mean over their tokens and words), not from the
//!   words' input embeddings. That vector already lies where the UNet expects a "toddler"
//!   conditioning, so a few hundred steps suffice — the point for a parent's device.
//! - **Regulariser**: `λ · mean((v − v₀)²)` with λ = 0.01, CrossInit's way of keeping the token
//!   editable ("an illustration of <mia> at the beach" still follows the prompt).
//! - **Timesteps**: distilled 1–4-step models (SD-Turbo, SDXS, LCM) only ever see the timesteps of
//!   their few-step schedules, so training samples uniformly from the trailing 4-step schedule
//!   {999, 749, 499, 249}: the noise levels the avatar will be drawn at, including 999 (1 step).
//! - **Templates**: photo and illustration phrasings, since books are illustrated, not photos.
//!
//! **Stronger likeness (pivotal tuning)**: with `lora_rank > 0` a LoRA on the UNet trains with
//! the vectors, as diffusers' advanced DreamBooth-LoRA script does with `--train_text_encoder_ti`
//! (the token's vectors are the text side, so the text encoder gets no LoRA). Choices:
//! - **Layers**: every attention projection of the UNet, self- and cross-attention (`to_q`,
//!   `to_k`, `to_v`, `to_out.0`: `train_dreambooth_lora`'s targets). The feed-forward and the
//!   convolutions would triple the file for a face, which the attention carries.
//! - **Rank 4, alpha = rank** (scale 1): the scripts' default; 3.3 MB for SD-Turbo in f32, inside
//!   the 6 MB a child may take (rank 8 would be 6.6 MB). alpha = rank is what diffusers'
//!   `load_lora_weights` assumes for a file that states none, so the file needs no metadata.
//! - **Initialisation**: peft's (`down` Kaiming-uniform, `up` zero): training starts from the
//!   textual-inversion model exactly, so the paired evaluation loss starts equal.
//! - **Learning rates**: the vectors keep theirs (5e-3); the LoRA has its own AdamW
//!   ([`DEFAULT_LORA_LEARNING_RATE`], weight decay 1e-4 as the advanced script), chosen from the
//!   paired evaluation in docs/benchmarks.md ("Pivotal tuning").
//! - **Steps**: the same run as the vectors alone (300 by default); gradient checkpointing, f16,
//!   checkpoints (the factors ride behind the vectors), resume and previews work as without.

use burn::module::{Module, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::device::{compute_dtype, read_values, upcast};
use crate::error::{EngineError, Result};
use crate::loaders::lora::LoraFile;
use crate::models::clip::MAX_LENGTH;
use crate::models::unet_2d::UNet2DConditionModel;
use crate::models::vae::Vae;
use crate::pipelines::prompt::PromptEncoder;
use crate::pipelines::stable_diffusion::{StableDiffusion, gaussian};
use crate::schedulers::{
    PredictionType, SchedulerConfig, add_noise_coefficients, alphas_cumprod, velocity_coefficients,
};
use crate::training::lora::{LoraWeights, TrainableLora};

/// The timesteps training draws from (see the module docs).
pub const TRAINING_TIMESTEPS: [usize; 4] = [999, 749, 499, 249];

/// Prompts a training step picks from; `{}` is the avatar's token.
pub const TEMPLATES: [&str; 6] = [
    "a photo of {}",
    "a close-up photo of {}",
    "an illustration of {}",
    "a picture book illustration of {}",
    "a drawing of {}",
    "a portrait of {}",
];

/// The rank of the "stronger likeness" LoRA: diffusers' and the pivotal-tuning scripts'
/// default; on SD-Turbo its file is 3.3 MB in f32 (see the module docs).
pub const DEFAULT_LORA_RANK: usize = protocol::STRONGER_LIKENESS_RANK;

/// The LoRA's learning rate (the vectors keep theirs); see the module docs.
pub const DEFAULT_LORA_LEARNING_RATE: f64 = 1e-4;

/// The trainable vectors, `[n, hidden]`, as a module so burn's optimisers can update them.
#[derive(Module, Debug)]
pub struct TokenVectors {
    pub vectors: Param<Tensor<2>>,
}

/// One training example: photo latents (scaled), noise, a timestep, a prompt.
#[derive(Clone, Debug)]
pub struct Example {
    pub latents: Tensor<4>,
    pub noise: Tensor<4>,
    pub timestep: usize,
    pub prompt: String,
}

/// The frozen model parts a loss needs.
pub struct Frozen<'a> {
    pub text: &'a PromptEncoder,
    pub unet: &'a UNet2DConditionModel,
    pub scheduler: &'a SchedulerConfig,
}

impl<'a> Frozen<'a> {
    /// The frozen parts of a loaded model, borrowed for one step.
    pub fn of(model: &'a StableDiffusion) -> Self {
        Frozen {
            text: &model.text,
            unet: &model.unet,
            scheduler: model.scheduler_config(),
        }
    }
}

/// The denoising loss of `example` with the token rows `vectors`: MSE between the UNet's
/// prediction for the noised latents and its target, as diffusers' textual-inversion training.
pub fn denoising_loss(frozen: &Frozen, vectors: Tensor<2>, example: &Example) -> Result<Tensor<1>> {
    let alphas = alphas_cumprod(frozen.scheduler)?;
    let timestep = example.timestep.min(alphas.len() - 1);
    let (sample_scale, noise_scale) = add_noise_coefficients(&alphas, timestep);
    // Latents, noise, the vectors and the loss are f32; the frozen model runs in its own type
    // (f16 on most GPUs), the casts passing the gradient through.
    let model_dtype = compute_dtype(&example.latents.device());
    let noisy = example.latents.clone() * sample_scale + example.noise.clone() * noise_scale;
    let context = frozen
        .text
        .encode_with_vectors(&[example.prompt.as_str()], vectors)?;
    let prediction = upcast(frozen.unet.forward(
        noisy.cast(model_dtype),
        timestep as f64,
        &context,
        None,
    ));
    let target = match frozen.scheduler.prediction_type {
        PredictionType::Epsilon => example.noise.clone(),
        PredictionType::VPrediction => {
            let (sample, noise) = velocity_coefficients(&alphas, timestep);
            example.latents.clone() * sample + example.noise.clone() * noise
        }
    };
    Ok((prediction - target).powi_scalar(2).mean())
}

/// A photo's latents for training, as diffusers' script makes them (the encoder's mean × the
/// scaling factor), for the photo and its mirror image. `encoder` is the model's own VAE, or
/// TAESD's encoder as the faster option (its latents approximate the scaled ones directly).
pub fn photo_latents(
    encoder: &Vae,
    scaling_factor: f64,
    picture: &image::DynamicImage,
    crop: crate::photos::Crop,
    resolution: usize,
    device: &Device,
) -> Vec<Tensor<4>> {
    [false, true]
        .into_iter()
        .map(|mirrored| {
            let pixels = crate::photos::to_tensor(picture, crop, resolution, mirrored, device);
            constant(upcast(encoder.encode(pixels)) * scaling_factor)
        })
        .collect()
}

/// Settings of one avatar's training.
#[derive(Clone, Debug)]
pub struct TrainingConfig {
    /// The placeholder, e.g. `<mia>`.
    pub token: String,
    /// The class words the vectors start from (CrossInit).
    pub init_words: Vec<String>,
    pub vectors: usize,
    pub steps: usize,
    pub learning_rate: f64,
    /// λ of the regulariser `λ · mean((v − v₀)²)`.
    pub regularization: f64,
    pub seed: u64,
    /// The rank of the LoRA trained with the vectors (pivotal tuning); 0: the vectors alone.
    pub lora_rank: usize,
    pub lora_learning_rate: f64,
}

impl TrainingConfig {
    pub fn new(token: &str) -> Self {
        TrainingConfig {
            token: token.to_owned(),
            init_words: vec!["toddler".into()],
            vectors: 2,
            steps: 300,
            learning_rate: 5e-3,
            regularization: 0.01,
            seed: 0,
            lora_rank: 0,
            lora_learning_rate: DEFAULT_LORA_LEARNING_RATE,
        }
    }

    /// The token names, diffusers' multi-vector convention: `<t>`, `<t>_1`, …
    pub fn token_names(&self) -> Vec<String> {
        (0..self.vectors)
            .map(|index| match index {
                0 => self.token.clone(),
                _ => format!("{}_{index}", self.token),
            })
            .collect()
    }
}

/// CrossInit: the text encoder's output for `words` — each word alone in the CLIP prompt, its
/// tokens' last hidden states averaged, then averaged over the words — as one `[hidden]` vector.
pub async fn cross_init(text: &PromptEncoder, words: &[String]) -> Result<Vec<f32>> {
    if words.is_empty() {
        return Err(EngineError::Usage("give at least one init word".into()));
    }
    let mut sum: Option<Tensor<1>> = None;
    for word in words {
        // The word's own tokens follow <|startoftext|>.
        let length = text.tokenizer.tokens(word)?.len().clamp(1, MAX_LENGTH - 2);
        let states = text.encode(&[word.as_str()])?;
        let [_, _, hidden] = states.dims();
        let mean: Tensor<1> = states.narrow(1, 1, length).mean_dim(1).reshape([hidden]);
        sum = Some(match sum {
            Some(sum) => sum + mean,
            None => mean,
        });
    }
    let mean = sum.expect("at least one word") / words.len() as f64;
    read_values(mean).await
}

/// A run ready for its first step (see [`start`]).
pub struct Run {
    pub training: Training,
    /// The fixed evaluation set of the paired figure.
    pub evaluation: Vec<Example>,
    /// Its mean loss with the untrained (CrossInit) vectors.
    pub eval_loss_before: f64,
}

/// Everything before the first step, for the CLI and the browser alike: the token's names added
/// to `model`'s tokenizer, CrossInit vectors, the evaluation set and its loss before training,
/// then the vectors and step of `checkpoint` when there is one. `latents` come from
/// [`photo_latents`].
pub async fn start(
    model: &mut StableDiffusion,
    config: TrainingConfig,
    latents: Vec<Tensor<4>>,
    checkpoint: Option<&[u8]>,
    device: &Device,
) -> Result<Run> {
    let start = cross_init(&model.text, &config.init_words).await?;
    let initial: Vec<f32> = (0..config.vectors).flat_map(|_| start.clone()).collect();
    model.text.add_placeholder_tokens(&config.token_names())?;
    let fresh = Training::new(config.clone(), initial, latents.clone(), device)?;
    let evaluation = fresh.evaluation_set(config.seed ^ 0x5eed);
    // The paired figure always compares with the untrained start, resumed or not.
    let eval_loss_before = fresh.evaluate(&Frozen::of(model), &evaluation).await?;
    let fresh = match config.lora_rank {
        0 => fresh,
        rank => fresh.with_lora(TrainableLora::new(&model.unet, rank, config.seed, device)),
    };
    let training = match checkpoint {
        Some(checkpoint) => Training::resume(config, checkpoint, latents, &model.unet, device)?,
        None => fresh,
    };
    Ok(Run {
        training,
        evaluation,
        eval_loss_before,
    })
}

/// AdamW's weight decay on the LoRA (the advanced pivotal-tuning script's default).
const LORA_WEIGHT_DECAY: f32 = 1e-4;

/// The first bytes of a checkpoint that carries a LoRA after its vectors.
const CHECKPOINT_WITH_LORA: &[u8; 8] = b"TSLORA01";

/// A training run: the vectors, their optimiser and the example stream.
pub struct Training {
    pub config: TrainingConfig,
    pub parameters: TokenVectors,
    initial: Tensor<2>,
    optimizer: burn::optim::ModuleOptimizer,
    rng: StdRng,
    /// `[1, 4, h, w]` latents of each photo and of its mirror image.
    photos: Vec<Tensor<4>>,
    pub step: usize,
    /// The UNet LoRA trained with the vectors (pivotal tuning), with its own optimiser.
    pub lora: Option<TrainableLora>,
    lora_optimizer: burn::optim::ModuleOptimizer,
}

impl Training {
    /// Starts from CrossInit vectors. `photos` are the cached latents (scaled), on `device`
    /// (an autodiff device).
    pub fn new(
        config: TrainingConfig,
        initial: Vec<f32>,
        photos: Vec<Tensor<4>>,
        device: &Device,
    ) -> Result<Self> {
        if photos.is_empty() {
            return Err(EngineError::Usage("no photos to learn from".into()));
        }
        let hidden = initial.len() / config.vectors;
        let initial = Tensor::<2>::from_data(
            TensorData::new(initial, [config.vectors, hidden]),
            (device, DType::F32),
        );
        Ok(Training {
            parameters: TokenVectors {
                vectors: Param::from_tensor(initial.clone().require_grad()),
            },
            initial: constant(initial),
            optimizer: AdamWConfig::new().with_weight_decay(0.0).init(),
            rng: StdRng::seed_from_u64(config.seed),
            lora_optimizer: AdamWConfig::new()
                .with_weight_decay(LORA_WEIGHT_DECAY)
                .init(),
            config,
            photos,
            step: 0,
            lora: None,
        })
    }

    /// Trains `lora` with the vectors.
    pub fn with_lora(mut self, lora: TrainableLora) -> Self {
        self.lora = Some(lora);
        self
    }

    /// `unet` with the LoRA as it is now merged in, out of any gradient graph (evaluation,
    /// previews); `None` without a LoRA.
    pub fn merged_unet(&self, unet: &UNet2DConditionModel) -> Option<UNet2DConditionModel> {
        self.lora.as_ref().map(|lora| lora.merged(unet.clone()))
    }

    /// The frozen parts with the LoRA as it is now (live, for the gradient, or merged).
    fn adapted_unet(&self, frozen: &Frozen, live: bool) -> Option<UNet2DConditionModel> {
        self.lora.as_ref().map(|lora| match live {
            true => lora.attach(frozen.unet.clone()),
            false => lora.merged(frozen.unet.clone()),
        })
    }

    /// The vectors as they are now, out of the gradient graph: for evaluation and previews.
    pub fn current_vectors(&self) -> Tensor<2> {
        constant(self.parameters.vectors.val())
    }

    /// The vectors' values, `[n][hidden]`.
    pub async fn vectors(&self) -> Result<Vec<Vec<f32>>> {
        let tensor = self.parameters.vectors.val();
        let [count, hidden] = tensor.dims();
        let values = read_values(tensor).await?;
        Ok((0..count)
            .map(|row| values[row * hidden..(row + 1) * hidden].to_vec())
            .collect())
    }

    /// A checkpoint: the vectors, their starting point, the step and the seed, as safetensors.
    /// Resuming replays the example stream to the same step, so the photos, noise and timesteps
    /// continue where they stopped; AdamW's moment estimates start afresh (they settle within a
    /// few steps, and keeping them would double the file for little gain).
    pub async fn checkpoint(&self) -> Result<Vec<u8>> {
        async fn rows(tensor: Tensor<2>) -> Result<(Vec<usize>, Vec<u8>)> {
            let shape = tensor.dims().to_vec();
            let values = read_values(tensor).await?;
            Ok((
                shape,
                values
                    .iter()
                    .flat_map(|value| value.to_le_bytes())
                    .collect(),
            ))
        }
        let (shape, vectors) = rows(self.parameters.vectors.val()).await?;
        let (_, initial) = rows(self.initial.clone()).await?;
        let view = |bytes| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map_err(|error| EngineError::Usage(error.to_string()))
        };
        let metadata = std::collections::HashMap::from([
            ("token".to_owned(), self.config.token.clone()),
            ("step".to_owned(), self.step.to_string()),
            ("seed".to_owned(), self.config.seed.to_string()),
        ]);
        let vectors = safetensors::serialize(
            [("vectors", view(&vectors)?), ("initial", view(&initial)?)],
            Some(metadata),
        )
        .map_err(|error| EngineError::Usage(error.to_string()))?;
        match &self.lora {
            // The LoRA's factors travel as a second safetensors file behind the first, its
            // length in the first's metadata being awkward to write before serialising.
            Some(lora) => {
                let factors = lora.file(std::collections::HashMap::new()).await?;
                let mut both = (vectors.len() as u64).to_le_bytes().to_vec();
                both.extend(vectors);
                both.extend(factors);
                Ok([CHECKPOINT_WITH_LORA.as_slice(), &both].concat())
            }
            None => Ok(vectors),
        }
    }

    /// Continues from a [`checkpoint`](Self::checkpoint) written for the same token and seed.
    pub fn resume(
        config: TrainingConfig,
        checkpoint: &[u8],
        photos: Vec<Tensor<4>>,
        unet: &UNet2DConditionModel,
        device: &Device,
    ) -> Result<Self> {
        let invalid = |problem: &str| EngineError::Usage(format!("the checkpoint {problem}"));
        let (checkpoint, lora) = match checkpoint.strip_prefix(CHECKPOINT_WITH_LORA.as_slice()) {
            Some(rest) if rest.len() >= 8 => {
                let length = u64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
                let rest = &rest[8..];
                let length = usize::try_from(length)
                    .ok()
                    .filter(|length| *length <= rest.len())
                    .ok_or_else(|| invalid("is damaged (its LoRA part is cut short)"))?;
                (&rest[..length], Some(&rest[length..]))
            }
            Some(_) => return Err(invalid("is damaged (cut short)")),
            None => (checkpoint, None),
        };
        let lora = match (lora, config.lora_rank) {
            (None, 0) => None,
            (Some(bytes), rank) if rank > 0 => {
                let path = std::path::Path::new("the checkpoint's LoRA");
                let file = LoraFile::from_safetensors(bytes, path)?;
                let lora = TrainableLora::from_file(unet, &file, device)?;
                if lora.rank != rank {
                    return Err(invalid("was made with another LoRA rank"));
                }
                Some(lora)
            }
            _ => {
                return Err(invalid(
                    "was made with another likeness setting (LoRA or not)",
                ));
            }
        };
        let (_, metadata) = safetensors::SafeTensors::read_metadata(checkpoint)
            .map_err(|error| invalid(&format!("is damaged ({error})")))?;
        let metadata = metadata.metadata().clone().unwrap_or_default();
        if metadata.get("token") != Some(&config.token)
            || metadata.get("seed") != Some(&config.seed.to_string())
        {
            return Err(invalid("belongs to another avatar or seed"));
        }
        let step: usize = metadata
            .get("step")
            .and_then(|step| step.parse().ok())
            .ok_or_else(|| invalid("has no step"))?;
        let tensors = safetensors::SafeTensors::deserialize(checkpoint)
            .map_err(|error| invalid(&format!("is damaged ({error})")))?;
        let read = |name: &str| -> Result<(Vec<usize>, Vec<f32>)> {
            let tensor = tensors
                .tensor(name)
                .map_err(|_| invalid(&format!("has no `{name}`")))?;
            let values = crate::loaders::weights::float_values(tensor.dtype(), tensor.data())
                .ok_or_else(|| invalid("holds no float vectors"))?;
            Ok((tensor.shape().to_vec(), values))
        };
        let (shape, vectors) = read("vectors")?;
        let (_, initial) = read("initial")?;
        if shape.first() != Some(&config.vectors) {
            return Err(invalid("has a different number of vectors"));
        }
        let mut training = Training::new(config, initial, photos, device)?;
        training.parameters = TokenVectors {
            vectors: Param::from_tensor(
                Tensor::<2>::from_data(
                    TensorData::new(vectors, [shape[0], shape[1]]),
                    (device, DType::F32),
                )
                .require_grad(),
            ),
        };
        training.lora = lora;
        for _ in 0..step {
            training.draw();
        }
        training.step = step;
        Ok(training)
    }

    /// The next random example of the stream.
    fn draw(&mut self) -> Example {
        let photo = self.photos[self.rng.random_range(0..self.photos.len())].clone();
        let shape = photo.dims();
        let noise = gaussian(&mut self.rng, shape.iter().product());
        let timestep = TRAINING_TIMESTEPS[self.rng.random_range(0..TRAINING_TIMESTEPS.len())];
        let template = TEMPLATES[self.rng.random_range(0..TEMPLATES.len())];
        Example {
            noise: Tensor::from_data(TensorData::new(noise, shape), (&photo.device(), DType::F32)),
            latents: photo,
            timestep,
            prompt: template.replace("{}", &self.config.token),
        }
    }

    /// One optimiser step; returns the step's denoising loss (without the regulariser).
    pub async fn step(&mut self, frozen: &Frozen<'_>) -> Result<f64> {
        let example = self.draw();
        let vectors = self.parameters.vectors.val();
        let adapted = self.adapted_unet(frozen, true);
        let frozen = Frozen {
            unet: adapted.as_ref().unwrap_or(frozen.unet),
            ..*frozen
        };
        let loss = denoising_loss(&frozen, vectors.clone(), &example)?;
        let drift = (vectors - self.initial.clone()).powi_scalar(2).mean();
        let total = loss.clone() + drift * self.config.regularization;
        let mut backward = total.backward();
        let gradients = GradientsParams::from_module(&mut backward, &self.parameters);
        if let Some(lora) = &mut self.lora {
            let lora_gradients = GradientsParams::from_module(&mut backward, &lora.weights);
            let weights = std::mem::replace(&mut lora.weights, LoraWeights { layers: Vec::new() });
            let updated =
                self.lora_optimizer
                    .step(self.config.lora_learning_rate, weights, lora_gradients);
            lora.replace_weights(updated);
        }
        drop(adapted);
        let parameters = std::mem::replace(
            &mut self.parameters,
            TokenVectors {
                vectors: Param::from_tensor(self.initial.clone()),
            },
        );
        self.parameters = self
            .optimizer
            .step(self.config.learning_rate, parameters, gradients);
        self.step += 1;
        scalar(loss).await
    }

    /// A fixed evaluation set: every photo (not mirrored) at every training timestep, with noise
    /// and template drawn from `seed` — the same draws before and after training.
    pub fn evaluation_set(&self, seed: u64) -> Vec<Example> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut examples = Vec::new();
        for photo in self.photos.iter().step_by(2) {
            for (index, &timestep) in TRAINING_TIMESTEPS.iter().enumerate() {
                let shape = photo.dims();
                let noise = gaussian(&mut rng, shape.iter().product());
                examples.push(Example {
                    latents: photo.clone(),
                    noise: Tensor::from_data(
                        TensorData::new(noise, shape),
                        (&photo.device(), DType::F32),
                    ),
                    timestep,
                    prompt: TEMPLATES[index % TEMPLATES.len()].replace("{}", &self.config.token),
                });
            }
        }
        examples
    }

    /// The mean denoising loss over `examples` with the current vectors (no gradients kept).
    pub async fn evaluate(&self, frozen: &Frozen<'_>, examples: &[Example]) -> Result<f64> {
        let vectors = self.current_vectors();
        let adapted = self.adapted_unet(frozen, false);
        let frozen = &Frozen {
            unet: adapted.as_ref().unwrap_or(frozen.unet),
            ..*frozen
        };
        let mut sum = 0.0;
        for example in examples {
            sum += scalar(denoising_loss(frozen, vectors.clone(), example)?).await?;
        }
        Ok(sum / examples.len().max(1) as f64)
    }
}

/// `tensor` as a constant: out of the graph *and* not requiring gradients. burn's `detach` keeps
/// `require_grad`, so passes with merely detached vectors still build a graph that nothing
/// backpropagates — the evaluation set held 10 GB that way before the first step.
fn constant<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    tensor.detach().set_require_grad(false)
}

async fn scalar(tensor: Tensor<1>) -> Result<f64> {
    Ok(f64::from(read_values(tensor).await?[0]))
}

/// What is written beside the vectors, as safetensors metadata.
#[derive(Clone, Debug)]
pub struct AvatarInfo {
    pub model: String,
    pub steps: usize,
    pub resolution: usize,
}

/// The avatar as diffusers' `learned_embeds.safetensors`: one tensor named after the token,
/// `[vectors, hidden]` f32 (what `load_textual_inversion` and this engine read), with the model,
/// token, vector count, steps, resolution and date as metadata.
pub fn embedding_file(token: &str, vectors: &[Vec<f32>], info: &AvatarInfo) -> Result<Vec<u8>> {
    let hidden = vectors.first().map_or(0, Vec::len);
    let bytes: Vec<u8> = vectors
        .iter()
        .flatten()
        .flat_map(|value| value.to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![vectors.len(), hidden],
        &bytes,
    )
    .map_err(|error| EngineError::Usage(error.to_string()))?;
    let metadata = std::collections::HashMap::from([
        (
            "format".to_owned(),
            "diffusers textual inversion".to_owned(),
        ),
        ("model".to_owned(), info.model.clone()),
        ("token".to_owned(), token.to_owned()),
        ("vectors".to_owned(), vectors.len().to_string()),
        ("steps".to_owned(), info.steps.to_string()),
        ("resolution".to_owned(), info.resolution.to_string()),
        ("date".to_owned(), today()),
    ]);
    safetensors::serialize([(token, view)], Some(metadata))
        .map_err(|error| EngineError::Usage(error.to_string()))
}

/// Today's date, `YYYY-MM-DD` (UTC).
fn today() -> String {
    let seconds = web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let days = (seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_leave_the_graph_and_need_no_gradient() {
        // A detached tensor that still required gradients made every evaluation pass build a
        // graph that was never freed before the next backward (10 GB at 256²).
        let device = crate::device::ComputeBackend::Cpu.device().autodiff();
        let vectors = Tensor::<2>::zeros([2, 4], &device).require_grad();
        assert!(vectors.clone().detach().is_require_grad(), "burn's detach");
        assert!(!constant(vectors).is_require_grad());
    }

    #[test]
    fn token_names_follow_diffusers_multi_vector_naming() {
        let mut config = TrainingConfig::new("<mia>");
        config.vectors = 3;
        assert_eq!(config.token_names(), ["<mia>", "<mia>_1", "<mia>_2"]);
    }

    #[test]
    fn the_embedding_file_reads_back_with_its_metadata() {
        let info = AvatarInfo {
            model: "stabilityai/sd-turbo".into(),
            steps: 10,
            resolution: 256,
        };
        let vectors = vec![vec![0.5, -1.0, 2.0], vec![1.0, 0.0, -0.25]];
        let bytes = embedding_file("<mia>", &vectors, &info).unwrap();
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let metadata = metadata.metadata().clone().unwrap();
        assert_eq!(metadata["token"], "<mia>");
        assert_eq!(metadata["vectors"], "2");
        assert_eq!(metadata["date"].len(), 10);
        let read = crate::loaders::textual_inversion::TextualInversion::from_safetensors(
            &bytes,
            std::path::Path::new("mia.safetensors"),
        )
        .unwrap();
        assert_eq!(read.tokens(), ["<mia>", "<mia>_1"]);
        assert_eq!(read.vectors, vectors);
    }
}
