//! `toddler`: the engine on the command line (native only).
//!
//! Other checks rely on these interfaces; keep them exactly:
//!
//! ```text
//! toddler tokenize --model DIR [--embedding FILE]... PROMPT
//! toddler encode-prompt --model DIR [--embedding FILE]... --out FILE PROMPT
//! toddler generate --model DIR --prompt P [--negative-prompt N] [--steps N] [--guidance G]
//!     [--width W] [--height H] [--seed S] [--noise FILE] [--embedding FILE]...
//!     [--scheduler euler-ancestral|euler|ddim|lcm] [--decoder TAESD_DIR] --out PNG
//!     [--latents-out FILE]
//! toddler train-avatar --model DIR --photos DIR --token "<kid>" [--init-words "toddler"]
//!     [--vectors N] [--steps N] [--lr X] [--resolution R] [--seed S] --out FILE
//! toddler complete --model PATH --prompt TEXT [--max-tokens N] [--greedy | --temperature T
//!     --top-p P --seed S] [--logits-out FILE] [--backend cpu|gpu] [--dtype f16|f32]
//! toddler write-story --model PATH --idea TEXT --child NAME [--pronouns she|he|they]
//!     [--pages N] [--seed S] [--backend cpu|gpu]
//! ```
//!
//! `complete` continues raw text (no chat template) with a language model, a GGUF file or a
//! transformers folder; its last stdout line is `{"ids": […], "text": "…"}`, and `--logits-out`
//! writes the vocabulary's scores at the prompt's last position (safetensors, tensor `logits`).
//!
//! `write-story` writes a picture book's pages from an idea (the story writer); its last stdout
//! line is `{"title": "…", "pages": [{"text": "…", "scene": "…"}, …]}`; the same seed writes the
//! same story.
//!
//! `train-avatar` prints one JSON line per step, `{"step": …, "loss": …}`, and a last line
//! `{"eval_loss_before": …, "eval_loss_after": …}`: the mean loss over a fixed evaluation set (every
//! photo at every training timestep, the same noise before and after).

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Instant;

    use clap::{Parser, Subcommand};
    use engine::device::{ComputeBackend, Precision};
    use engine::loaders::files::{AsComponent, Folder, block_on};
    use engine::loaders::lora::LoraFile;
    use engine::loaders::textual_inversion::TextualInversion;
    use engine::models::lora::ScaledLora;
    use engine::pipelines::prompt::PromptEncoder;
    use engine::pipelines::stable_diffusion::{GenerationRequest, StableDiffusion};
    use engine::schedulers::SchedulerKind;
    use engine::{EngineError, Result};

    #[derive(Parser)]
    #[command(
        name = "toddler",
        about = "ToddlerStories' diffusion engine on the command line"
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Print the 77 token ids of a prompt as one JSON line: {"input_ids":[…]}.
        Tokenize {
            #[command(flatten)]
            text: TextArgs,
        },
        /// Write the text encoder's last hidden state as safetensors (tensor `hidden_states`).
        EncodePrompt {
            #[command(flatten)]
            text: TextArgs,
            /// Where to write the safetensors file.
            #[arg(long)]
            out: PathBuf,
            /// Where to compute: `cpu` or `gpu`.
            #[arg(long, default_value = "cpu")]
            backend: String,
        },
        /// Draw a picture from a prompt and write it as a PNG.
        Generate(GenerateArgs),
        /// Learn an avatar (textual inversion) from a folder of photos.
        TrainAvatar(TrainArgs),
        /// Time a few kernels on this device and estimate what a model takes here, from its
        /// configs alone (what the app tells a parent before a download); prints JSON.
        Estimate(EstimateArgs),
        /// Continue a text with a language model (a GGUF file or a transformers folder).
        Complete(CompleteArgs),
        /// Write a picture book's pages from a one-line idea with a language model.
        WriteStory(WriteStoryArgs),
    }

    #[derive(clap::Args)]
    struct WriteStoryArgs {
        /// A GGUF file or a transformers folder.
        #[arg(long)]
        model: PathBuf,
        /// One line: what the story is about.
        #[arg(long)]
        idea: String,
        /// The child's name (the model reads a stand-in; the story names the child).
        #[arg(long)]
        child: String,
        #[arg(long, default_value = "they", value_parser = ["she", "he", "they"])]
        pronouns: String,
        #[arg(long, default_value_t = stories::writer::DEFAULT_PAGES)]
        pages: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value = "cpu")]
        backend: String,
    }

    #[derive(clap::Args)]
    struct CompleteArgs {
        /// A GGUF file or a transformers folder.
        #[arg(long)]
        model: PathBuf,
        /// Raw text, tokenised as transformers' tokenizer does by default.
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 32)]
        max_tokens: usize,
        /// Always the best token (the default without `--temperature`).
        #[arg(long, conflicts_with_all = ["temperature", "top_p", "top_k"])]
        greedy: bool,
        #[arg(long)]
        temperature: Option<f32>,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 1.0)]
        repetition_penalty: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where to write the scores at the prompt's last position (safetensors, `logits`).
        #[arg(long)]
        logits_out: Option<PathBuf>,
        #[arg(long, default_value = "cpu")]
        backend: String,
        #[arg(long)]
        dtype: Option<String>,
        /// Keep writing past end tokens (benchmarks compare the same number of tokens).
        #[arg(long)]
        ignore_end: bool,
        /// Write it this many times (benchmarks: the first run warms up; each is timed).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    }

    #[derive(clap::Args)]
    struct EstimateArgs {
        /// A diffusers model folder (its configs are read; weights need not be there).
        #[arg(long)]
        model: PathBuf,
        /// A fast decoder's folder (as `generate --decoder`).
        #[arg(long)]
        decoder: Option<PathBuf>,
        #[arg(long, default_value = "cpu")]
        backend: String,
        #[arg(long)]
        dtype: Option<String>,
        /// The type the weights' files store: `f16` or `f32`.
        #[arg(long, default_value = "f16")]
        stored: String,
        #[arg(long, default_value_t = 512)]
        width: usize,
        #[arg(long, default_value_t = 512)]
        height: usize,
        #[arg(long, default_value_t = 1)]
        steps: usize,
        #[arg(long, default_value_t = 0.0)]
        guidance: f64,
        /// The avatar's training side.
        #[arg(long, default_value_t = 512)]
        resolution: usize,
        #[arg(long, default_value_t = 300)]
        avatar_steps: usize,
    }

    #[derive(clap::Args)]
    struct TrainArgs {
        /// A diffusers model folder.
        #[arg(long)]
        model: PathBuf,
        /// A folder of 3–10 photos (JPEG, PNG or WebP) of the child.
        #[arg(long)]
        photos: PathBuf,
        /// The avatar's placeholder token, e.g. "<mia>".
        #[arg(long)]
        token: String,
        /// Class words the vectors start from, comma-separated ("toddler" or "toddler, child").
        #[arg(long, default_value = "toddler")]
        init_words: String,
        /// Vectors per token.
        #[arg(long, default_value_t = 2)]
        vectors: usize,
        #[arg(long, default_value_t = 300)]
        steps: usize,
        /// AdamW learning rate.
        #[arg(long, default_value_t = 5e-3)]
        lr: f64,
        /// Training resolution: 512, 384 or 256 (any multiple of 8 works).
        #[arg(long, default_value_t = 512)]
        resolution: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Where to write the avatar (diffusers learned_embeds safetensors).
        #[arg(long)]
        out: PathBuf,
        /// Where to compute: `cpu` or `gpu`.
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Precision of the weights and compute: `f16` or `f32` (default: f16 on a GPU that
        /// computes in it, f32 otherwise).
        #[arg(long)]
        dtype: Option<String>,
        /// A checkpoint file, written every `--checkpoint-every` steps; when it exists at the start,
        /// training resumes from it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        #[arg(long, default_value_t = 50)]
        checkpoint_every: usize,
        /// A TAESD folder (`config.json` + weights, as madebyollin/taesd): encode the photos with
        /// its encoder instead of the model's VAE (faster).
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Recompute memory-bound activations in the backward pass instead of keeping them
        /// (less device memory, more compute).
        #[arg(long)]
        gradient_checkpointing: bool,
        /// Trains a LoRA of this rank on the UNet's attention with the vectors (pivotal tuning:
        /// a stronger likeness); 0, the default, trains the vectors alone.
        #[arg(long, default_value_t = 0)]
        lora_rank: usize,
        /// Where to write the LoRA (diffusers' `pytorch_lora_weights.safetensors` format) when
        /// `--lora-rank` is above 0; default: beside `--out`, named `<out>.lora.safetensors`.
        #[arg(long)]
        lora_out: Option<PathBuf>,
        /// The LoRA's AdamW learning rate (the vectors keep `--lr`).
        #[arg(long, default_value_t = engine::training::avatar::DEFAULT_LORA_LEARNING_RATE)]
        lora_lr: f64,
    }

    #[derive(clap::Args)]
    struct GenerateArgs {
        /// A diffusers model folder.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value = "")]
        negative_prompt: String,
        /// Denoising steps (distilled models need 1–4).
        #[arg(long, default_value_t = 1)]
        steps: usize,
        /// Classifier-free guidance scale; 1 or less skips the unconditional pass.
        #[arg(long, default_value_t = 0.0)]
        guidance: f64,
        #[arg(long, default_value_t = 512)]
        width: usize,
        #[arg(long, default_value_t = 512)]
        height: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A safetensors file with tensor `noise` [1, 4, H/8, W/8]: the starting latents.
        #[arg(long)]
        noise: Option<PathBuf>,
        #[arg(long = "embedding")]
        embeddings: Vec<PathBuf>,
        /// A LoRA file (diffusers, peft or kohya/A1111 safetensors); may be given several times.
        #[arg(long = "lora")]
        loras: Vec<PathBuf>,
        /// The strength of every `--lora` (1.0: as trained).
        #[arg(long, default_value_t = 1.0)]
        lora_scale: f64,
        /// Overrides the folder's scheduler: euler-ancestral, euler, ddim or lcm.
        #[arg(long)]
        scheduler: Option<String>,
        /// Where to write the picture (PNG).
        #[arg(long)]
        out: PathBuf,
        /// Where to write the final latents (safetensors, tensor `latents`).
        #[arg(long)]
        latents_out: Option<PathBuf>,
        /// A fast decoder's folder (`config.json` + weights, as madebyollin/taesd) to draw the
        /// picture with instead of the model's own VAE: a tenth of its work, which on the CPU is
        /// most of a picture's time at 256² and above (docs/benchmarks.md).
        #[arg(long)]
        decoder: Option<PathBuf>,
        /// Where to compute: `cpu` or `gpu`.
        #[arg(long, default_value = "cpu")]
        backend: String,
        /// Precision of the weights and compute: `f16` or `f32` (default: f16 on a GPU that
        /// computes in it, f32 otherwise).
        #[arg(long)]
        dtype: Option<String>,
        /// Draws the picture this many times in one process and reports each (the first run
        /// compiles the GPU kernels; the later ones are the warm figures).
        #[arg(long, default_value_t = 1)]
        repeat: usize,
    }

    #[derive(clap::Args)]
    struct TextArgs {
        /// A diffusers model folder (with tokenizer/ and text_encoder/).
        #[arg(long)]
        model: PathBuf,
        /// A textual-inversion embedding file; may be given several times.
        #[arg(long = "embedding")]
        embeddings: Vec<PathBuf>,
        /// The prompt.
        prompt: String,
    }

    pub fn main() -> ExitCode {
        match run(Cli::parse()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("toddler: {error}");
                ExitCode::FAILURE
            }
        }
    }

    fn run(cli: Cli) -> Result<()> {
        match cli.command {
            Command::TrainAvatar(args) => train_avatar(args)?,
            Command::Tokenize { text } => {
                let encoder = load(&text, ComputeBackend::Cpu)?;
                let ids = encoder.input_ids(&text.prompt)?;
                println!("{}", serde_json::json!({ "input_ids": ids }));
            }
            Command::EncodePrompt { text, out, backend } => {
                let backend = parse_backend(&backend)?;
                let started = Instant::now();
                let encoder = load(&text, backend)?;
                let loaded = started.elapsed();
                let hidden = encoder.encode(&[&text.prompt])?;
                let shape = hidden.dims().to_vec();
                let values = hidden
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|error| {
                        EngineError::Usage(format!(
                            "could not read the hidden states back: {error:?}"
                        ))
                    })?;
                let encoded = started.elapsed() - loaded;
                write_safetensors(&out, "hidden_states", &shape, &values)?;
                eprintln!(
                    "loaded in {:.0} ms, encoded in {:.0} ms",
                    loaded.as_secs_f64() * 1e3,
                    encoded.as_secs_f64() * 1e3
                );
            }
            Command::Generate(args) => generate(args)?,
            Command::Estimate(args) => estimate(args)?,
            Command::Complete(args) => complete(args)?,
            Command::WriteStory(args) => write_story(args)?,
        }
        Ok(())
    }

    fn estimate(args: EstimateArgs) -> Result<()> {
        use engine::estimate::{Path, PipelineShape, estimate, speed};
        let backend = parse_backend(&args.backend)?;
        let (device, precision) = backend.device_with(parse_precision(args.dtype.as_deref())?)?;
        let stored = parse_precision(Some(&args.stored))?.unwrap_or(Precision::F16);
        let files = Folder(args.model.clone());
        let shape = match &args.decoder {
            Some(folder) => block_on(PipelineShape::read(
                &files,
                Some(&AsComponent::vae(Folder(folder.clone()))),
            ))?,
            None => block_on(PipelineShape::read(&files, None::<&Folder>))?,
        };
        let processor = backend == ComputeBackend::Cpu;
        let started = Instant::now();
        let speed = block_on(speed::measure(&device, processor))?;
        let measured_in = started.elapsed().as_secs_f64();
        let path = Path::new(processor, precision, stored);
        let picture = protocol::PictureWork {
            width: args.width,
            height: args.height,
            steps: args.steps,
            guidance: args.guidance,
        };
        let avatar = protocol::AvatarWork {
            resolution: args.resolution,
            steps: args.avatar_steps,
            photos: 5,
        };
        let estimate = estimate(&shape, path, &speed, &picture, &avatar);
        let report = serde_json::json!({
            "precision": precision.to_string(),
            "measured_in_seconds": measured_in,
            "speed": speed,
            "estimate": estimate,
        });
        println!("{report}");
        Ok(())
    }

    fn generate(args: GenerateArgs) -> Result<()> {
        let backend = parse_backend(&args.backend)?;
        let scheduler = args
            .scheduler
            .as_deref()
            .map(SchedulerKind::from_cli_name)
            .transpose()?;
        let noise = args
            .noise
            .as_ref()
            .map(|path| read_tensor(path, "noise"))
            .transpose()?;
        let (device, precision) = backend.device_with(parse_precision(args.dtype.as_deref())?)?;
        eprintln!("computing in {precision} on the {backend:?} backend");
        let started = Instant::now();
        let files = Folder(args.model.clone());
        let mut model = match &args.decoder {
            Some(folder) => block_on(StableDiffusion::load_with_decoder(
                &files,
                &AsComponent::vae(Folder(folder.clone())),
                None,
                &device,
            ))?,
            None => block_on(StableDiffusion::load(&files, None, &device))?,
        };
        for path in &args.embeddings {
            model.add_embedding(&read_embedding(path)?, path)?;
        }
        let loras = args
            .loras
            .iter()
            .map(|path| {
                Ok(ScaledLora {
                    file: LoraFile::from_safetensors(&read_file(path)?, path)?,
                    scale: args.lora_scale,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        model.set_loras(&loras)?;
        let loaded = started.elapsed();
        if let Some(memory) = device_memory(&device) {
            eprintln!(
                "weights on the device: {:.0} MiB in {precision}",
                memory.in_use as f64 / (1024.0 * 1024.0)
            );
        }
        let request = GenerationRequest {
            prompt: args.prompt,
            negative_prompt: args.negative_prompt,
            steps: args.steps,
            guidance: args.guidance,
            width: args.width,
            height: args.height,
            seed: args.seed,
            scheduler,
            noise,
        };
        let mut drawn = None;
        for run in 1..=args.repeat.max(1) {
            let began = Instant::now();
            let generated = block_on(model.generate(&request, |_| true))?;
            let timings = &generated.timings;
            if args.repeat > 1 {
                eprintln!("run {run}:");
            }
            eprintln!("prompt encoded in {:.0} ms", timings.text_ms);
            for (step, took) in timings.unet_ms.iter().enumerate() {
                eprintln!(
                    "step {}/{} in {took:.0} ms",
                    step + 1,
                    timings.unet_ms.len()
                );
            }
            eprintln!("decoded in {:.0} ms", timings.decode_ms);
            drawn = Some((generated, began.elapsed()));
        }
        let (generated, took) = drawn.expect("at least one run");
        if let Some(path) = &args.latents_out {
            write_safetensors(path, "latents", &generated.latent_shape, &generated.latents)?;
        }
        image::save_buffer(
            &args.out,
            &generated.rgb,
            generated.width as u32,
            generated.height as u32,
            image::ColorType::Rgb8,
        )
        .map_err(|error| {
            EngineError::Usage(format!(
                "{}: could not write the picture: {error}",
                args.out.display()
            ))
        })?;
        eprintln!(
            "loaded in {:.0} ms, generated in {:.0} ms, peak memory {:.0} MiB",
            loaded.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e3,
            peak_memory_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0)
        );
        Ok(())
    }

    fn train_avatar(args: TrainArgs) -> Result<()> {
        use engine::photos::{Crop, decode};
        use engine::training::avatar::{
            AvatarInfo, Frozen, Run, TrainingConfig, photo_latents, start,
        };

        if args.resolution == 0 || !args.resolution.is_multiple_of(8) {
            return Err(EngineError::Usage(format!(
                "--resolution must be a positive multiple of 8 (512, 384 or 256), not {}",
                args.resolution
            )));
        }
        let backend = parse_backend(&args.backend)?;
        let (device, precision) = backend.device_with(parse_precision(args.dtype.as_deref())?)?;
        eprintln!("computing in {precision} on the {backend:?} backend (the vectors in f32)");
        let device = match args.gradient_checkpointing {
            true => device.autodiff().gradient_checkpointing(),
            false => device.autodiff(),
        };
        let mut model = block_on(StableDiffusion::load(
            &Folder(args.model.clone()),
            None,
            &device,
        ))?
        .frozen();
        let weights_memory = device_memory(&device);
        let resident_after_load = resident_memory_bytes();

        let mut config = TrainingConfig::new(&args.token);
        config.init_words = args
            .init_words
            .split(',')
            .map(|word| word.trim().to_owned())
            .filter(|word| !word.is_empty())
            .collect();
        config.vectors = args.vectors.max(1);
        config.steps = args.steps;
        config.learning_rate = args.lr;
        config.seed = args.seed;
        config.lora_rank = args.lora_rank;
        config.lora_learning_rate = args.lora_lr;
        let lora_out = (args.lora_rank > 0).then(|| {
            args.lora_out
                .clone()
                .unwrap_or_else(|| args.out.with_extension("lora.safetensors"))
        });

        // Each photo and its mirror image, encoded once.
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&args.photos)
            .map_err(|source| EngineError::Io {
                path: args.photos.clone(),
                source,
            })?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.is_file() && is_picture_name(path))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(EngineError::Usage(format!(
                "{}: no photos (JPEG, PNG or WebP) in this folder",
                args.photos.display()
            )));
        }
        if !(3..=10).contains(&paths.len()) {
            eprintln!(
                "note: {} photos; 3 to 10 clear photos of the child work best",
                paths.len()
            );
        }
        // TAESD's encoder, when asked for: faster than the model's VAE, nearly the same latents.
        let taesd = match &args.encoder {
            Some(folder) => {
                let files = AsComponent::vae(Folder(folder.clone()));
                let (vae, info) = block_on(engine::models::vae::Vae::load(&files, None, &device))?;
                Some((vae.no_grad(), info))
            }
            None => None,
        };
        let (encoder, scaling_factor) = match &taesd {
            Some((vae, info)) => (vae, info.scaling_factor),
            None => (&model.vae, model.scaling_factor()),
        };
        let mut latents = Vec::new();
        for path in &paths {
            let picture = decode(&read_file(path)?, path)?;
            let crop = Crop::default_for(picture.width(), picture.height());
            latents.extend(photo_latents(
                encoder,
                scaling_factor,
                &picture,
                crop,
                args.resolution,
                &device,
            ));
        }

        let checkpoint = match &args.checkpoint {
            Some(path) if path.exists() => Some(read_file(path)?),
            _ => None,
        };
        let Run {
            mut training,
            evaluation,
            eval_loss_before: before,
        } = block_on(start(
            &mut model,
            config.clone(),
            latents,
            checkpoint.as_deref(),
            &device,
        ))?;
        if let (Some(path), true) = (&args.checkpoint, training.step > 0) {
            eprintln!("resuming from step {} ({})", training.step, path.display());
        }
        let frozen = Frozen::of(&model);
        let started = Instant::now();
        while training.step < config.steps {
            let loss = block_on(training.step(&frozen))?;
            if let Some(path) = &args.checkpoint
                && training.step.is_multiple_of(args.checkpoint_every.max(1))
            {
                // Written beside, then renamed: a crash mid-write leaves the last good one.
                let partial = path.with_extension("partial");
                std::fs::write(&partial, block_on(training.checkpoint())?)
                    .and_then(|()| std::fs::rename(&partial, path))
                    .map_err(|source| EngineError::Io {
                        path: path.clone(),
                        source,
                    })?;
            }
            println!(
                "{}",
                serde_json::json!({
                    "step": training.step,
                    "loss": loss,
                    "seconds": started.elapsed().as_secs_f64(),
                })
            );
        }
        // The allocator's high-water marks, read before the evaluation passes reuse its pages.
        if let (Some(weights), Some(training)) = (weights_memory, device_memory(&device)) {
            eprintln!(
                "{}",
                serde_json::json!({
                    "device_memory": {
                        "weights_bytes": weights.in_use,
                        "training_reserved_bytes": training.reserved,
                        "training_peak_bytes": training.peak,
                    }
                })
            );
        } else if let (Some(after_load), Some(peak)) = (resident_after_load, peak_memory_bytes()) {
            // The CPU backend has no pools to ask: its device memory is the process's.
            eprintln!(
                "{}",
                serde_json::json!({
                    "process_memory": {
                        "after_load_bytes": after_load,
                        "peak_bytes": peak,
                    }
                })
            );
        }
        let after = block_on(training.evaluate(&frozen, &evaluation))?;
        let info = AvatarInfo {
            model: args.model.display().to_string(),
            steps: config.steps,
            resolution: args.resolution,
        };
        let file = engine::training::avatar::embedding_file(
            &config.token,
            &block_on(training.vectors())?,
            &info,
        )?;
        std::fs::write(&args.out, file).map_err(|source| EngineError::Io {
            path: args.out.clone(),
            source,
        })?;
        if let (Some(lora), Some(path)) = (&training.lora, &lora_out) {
            let metadata = std::collections::HashMap::from([
                ("model".to_owned(), info.model.clone()),
                ("token".to_owned(), config.token.clone()),
                ("steps".to_owned(), config.steps.to_string()),
            ]);
            std::fs::write(path, block_on(lora.file(metadata))?).map_err(|source| {
                EngineError::Io {
                    path: path.clone(),
                    source,
                }
            })?;
            eprintln!(
                "LoRA of rank {} ({} values) written to {}",
                lora.rank,
                lora.parameter_count(),
                path.display()
            );
        }
        println!(
            "{}",
            serde_json::json!({ "eval_loss_before": before, "eval_loss_after": after })
        );
        Ok(())
    }

    fn parse_precision(name: Option<&str>) -> Result<Option<Precision>> {
        name.map(str::parse).transpose()
    }

    fn parse_backend(name: &str) -> Result<ComputeBackend> {
        name.parse()
            .map_err(|error| EngineError::Usage(format!("{error}")))
    }

    fn is_picture_name(path: &std::path::Path) -> bool {
        path.extension()
            .and_then(|extension| extension.to_str())
            .is_some_and(|extension| {
                ["jpg", "jpeg", "png", "webp"].contains(&extension.to_ascii_lowercase().as_str())
            })
    }

    /// What a device's allocator holds: bytes in live tensors, bytes it reserved, and the sum
    /// of its pools' peak pages (what the device had to give it at worst).
    struct DeviceMemory {
        in_use: u64,
        reserved: u64,
        peak: u64,
    }

    fn device_memory(device: &burn::tensor::Device) -> Option<DeviceMemory> {
        let usage = device.memory_pool_usage()?;
        let peak = device
            .memory_pool_report()
            .map(|pools| {
                pools
                    .iter()
                    .map(|pool| pool.pages_peak * pool.page_size)
                    .sum()
            })
            .unwrap_or(usage.bytes_reserved);
        Some(DeviceMemory {
            in_use: usage.bytes_in_use,
            reserved: usage.bytes_reserved,
            peak,
        })
    }

    /// The process's peak resident memory (Linux `VmHWM`), for benchmarks.
    fn peak_memory_bytes() -> Option<u64> {
        process_status_bytes("VmHWM:")
    }

    /// The process's resident memory now (Linux `VmRSS`).
    fn resident_memory_bytes() -> Option<u64> {
        process_status_bytes("VmRSS:")
    }

    fn process_status_bytes(field: &str) -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// One f32 tensor from a safetensors file.
    fn read_tensor(path: &PathBuf, name: &str) -> Result<Vec<f32>> {
        let bytes = read_file(path)?;
        let tensors = safetensors::SafeTensors::deserialize(&bytes).map_err(|error| {
            EngineError::Weights {
                path: path.clone(),
                problem: error.to_string(),
            }
        })?;
        let tensor = tensors.tensor(name).map_err(|_| EngineError::Tensor {
            path: path.clone(),
            tensor: name.into(),
            problem: "is missing".into(),
        })?;
        if tensor.dtype() != safetensors::Dtype::F32 {
            return Err(EngineError::Tensor {
                path: path.clone(),
                tensor: name.into(),
                problem: format!("has type {:?}; expected F32", tensor.dtype()),
            });
        }
        Ok(
            engine::loaders::weights::float_values(tensor.dtype(), tensor.data())
                .expect("an F32 tensor, checked above"),
        )
    }

    fn load(text: &TextArgs, backend: ComputeBackend) -> Result<PromptEncoder> {
        let mut encoder = block_on(PromptEncoder::load(
            &Folder(text.model.clone()),
            None,
            &backend.device(),
        ))?;
        for path in &text.embeddings {
            encoder.add_embedding(&read_embedding(path)?, path)?;
        }
        Ok(encoder)
    }

    fn read_file(path: &PathBuf) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(|source| EngineError::Io {
            path: path.clone(),
            source,
        })
    }

    /// A language model from a GGUF file or a transformers folder.
    fn load_language_model(
        path: &std::path::Path,
        device: &burn::tensor::Device,
    ) -> Result<engine::pipelines::text_generation::LanguageModel> {
        let (files, gguf_file) = if path.is_file() {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .ok_or_else(|| EngineError::Usage("the model's file name is not text".into()))?
                .to_owned();
            let folder = path
                .parent()
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            (Folder(folder), Some(name))
        } else {
            (Folder(path.to_path_buf()), None)
        };
        block_on(engine::pipelines::text_generation::LanguageModel::load(
            &files,
            gguf_file.as_deref(),
            device,
        ))
    }

    fn write_story(args: WriteStoryArgs) -> Result<()> {
        use engine::pipelines::story_writer::{Written, write_story};
        use engine::pipelines::text_generation::Next;
        use stories::writer::{Part, StoryIdea};
        use stories::{Child, Pronouns};
        let backend = parse_backend(&args.backend)?;
        let (device, precision) = backend.device_with(None)?;
        let started = Instant::now();
        let model = load_language_model(&args.model, &device)?;
        eprintln!(
            "loaded a {} model ({} layers) in {:.2} s; computing in {precision} on the {backend:?} backend",
            model.config.model_type,
            model.config.num_hidden_layers,
            started.elapsed().as_secs_f64()
        );
        let idea = StoryIdea {
            idea: args.idea,
            child: Child {
                name: args.child,
                pronouns: Pronouns::from_key(&args.pronouns),
                companion: String::new(),
            },
            pages: args.pages,
        };
        let outcome = block_on(write_story(&model, &idea, args.seed, |written| {
            match written {
                Written::Piece {
                    part,
                    text,
                    kept: true,
                } => match part {
                    Part::Title => eprintln!("{text}"),
                    Part::Text(page) => eprintln!("{}. {text}", page + 1),
                    Part::Scene(_) => eprintln!("   [{text}]"),
                },
                Written::Rewriting { part, reason } => {
                    eprintln!("   (writing {} again: {reason})", part.describe())
                }
                Written::Piece { kept: false, .. } => {}
            }
            Next::Continue
        }))?;
        eprintln!(
            "{} pages in {:.2} s: {} tokens written, {} read; {} pieces written again",
            outcome.story.pages.len(),
            outcome.seconds,
            outcome.tokens_written,
            outcome.tokens_read,
            outcome.rewrites
        );
        println!(
            "{}",
            serde_json::to_string(&outcome.story)
                .map_err(|error| EngineError::Usage(error.to_string()))?
        );
        Ok(())
    }

    fn complete(args: CompleteArgs) -> Result<()> {
        use engine::pipelines::text_generation::Next;
        use engine::sampling::Sampling;
        let backend = parse_backend(&args.backend)?;
        let (device, precision) = backend.device_with(parse_precision(args.dtype.as_deref())?)?;
        let started = Instant::now();
        let mut model = load_language_model(&args.model, &device)?;
        if args.ignore_end {
            model.end_ids.clear();
        }
        eprintln!(
            "loaded a {} model ({} layers) in {:.2} s; computing in {precision} on the {backend:?} backend",
            model.config.model_type,
            model.config.num_hidden_layers,
            started.elapsed().as_secs_f64()
        );
        let sampling = Sampling {
            temperature: args.temperature.filter(|_| !args.greedy),
            top_p: args.top_p,
            top_k: args.top_k,
            repetition_penalty: args.repetition_penalty,
            seed: args.seed,
        };
        let prompt = model.tokenizer.encode(&args.prompt)?;
        let mut cache = model.cache_for(prompt.len(), args.max_tokens)?;
        for _ in 1..args.repeat {
            let completion = block_on(model.complete(
                &prompt,
                args.max_tokens,
                sampling.clone(),
                &mut cache,
                |_| Next::Continue,
            ))?;
            report_completion(prompt.len(), &completion);
        }
        let completion =
            block_on(
                model.complete(&prompt, args.max_tokens, sampling, &mut cache, |token| {
                    eprint!("{}", token.text);
                    Next::Continue
                }),
            )?;
        eprintln!();
        report_completion(prompt.len(), &completion);
        if let Some(path) = &args.logits_out {
            let logits = &completion.prompt_logits;
            write_safetensors(path, "logits", &[logits.len()], logits)?;
        }
        println!(
            "{}",
            serde_json::json!({ "ids": completion.ids, "text": completion.text })
        );
        Ok(())
    }

    fn report_completion(
        prompt_tokens: usize,
        completion: &engine::pipelines::text_generation::Completion,
    ) {
        let generated = completion.ids.len();
        eprintln!(
            "prompt: {} tokens in {:.3} s ({:.1} tokens/s); reply: {generated} tokens in {:.3} s ({:.1} tokens/s)",
            prompt_tokens,
            completion.prompt_seconds,
            prompt_tokens as f64 / completion.prompt_seconds.max(1e-9),
            completion.generation_seconds,
            generated.saturating_sub(1) as f64 / completion.generation_seconds.max(1e-9),
        );
    }

    fn read_embedding(path: &PathBuf) -> Result<TextualInversion> {
        TextualInversion::from_safetensors(&read_file(path)?, path)
    }

    fn write_safetensors(
        path: &PathBuf,
        name: &str,
        shape: &[usize],
        values: &[f32],
    ) -> Result<()> {
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes)
                .map_err(|error| EngineError::Usage(format!("{error}")))?;
        let file = safetensors::serialize([(name, view)], None)
            .map_err(|error| EngineError::Usage(format!("{error}")))?;
        std::fs::write(path, file).map_err(|source| EngineError::Io {
            path: path.clone(),
            source,
        })
    }
}
