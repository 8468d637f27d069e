//! `toddler`: the engine on the command line (native only).
//!
//! Other checks rely on these interfaces; keep them exactly:
//!
//! ```text
//! toddler tokenize --model DIR [--embedding FILE]... PROMPT
//! toddler encode-prompt --model DIR [--embedding FILE]... --out FILE PROMPT
//! ```

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
    use engine::device::ComputeBackend;
    use engine::files::Folder;
    use engine::prompt::PromptEncoder;
    use engine::textual_inversion::TextualInversion;
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
            Command::Tokenize { text } => {
                let encoder = load(&text, ComputeBackend::Cpu)?;
                let ids = encoder.input_ids(&text.prompt)?;
                println!("{}", serde_json::json!({ "input_ids": ids }));
            }
            Command::EncodePrompt { text, out, backend } => {
                let backend: ComputeBackend = backend
                    .parse()
                    .map_err(|error| EngineError::Usage(format!("{error}")))?;
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
        }
        Ok(())
    }

    fn load(text: &TextArgs, backend: ComputeBackend) -> Result<PromptEncoder> {
        let mut encoder =
            PromptEncoder::load(&Folder(text.model.clone()), None, &backend.device())?;
        for path in &text.embeddings {
            let bytes = std::fs::read(path).map_err(|source| EngineError::Io {
                path: path.clone(),
                source,
            })?;
            let embedding = TextualInversion::from_safetensors(&bytes, path)?;
            encoder.add_embedding(&embedding, path)?;
        }
        Ok(encoder)
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
