//! `cargo xtask fuzz [RUNS]`: every fuzz target in engine/fuzz for RUNS executions, seeded from
//! the fixtures, with a summary a benchmark table can quote.

use std::fs;
use std::process::Command;
use std::time::Instant;

use crate::{Result, root, run};

/// Each target and the fixture files (relative to models/fixtures) its corpus starts from.
const TARGETS: [(&str, &[&str]); 6] = [
    (
        "safetensors_header",
        &[
            "embeddings/mia.safetensors",
            "embeddings/cat-toy.safetensors",
            "loras/kid.safetensors",
            "tiny-sd2-noise.safetensors",
        ],
    ),
    (
        "configs",
        &[
            "tiny-sd2/unet/config.json",
            "tiny-sd2/vae/config.json",
            "tiny-sd2/text_encoder/config.json",
            "tiny-sd2/scheduler/scheduler_config.json",
            "tiny-sd1/scheduler/scheduler_config.json",
            "tiny-sdxs/vae/config.json",
            "tiny-sdxs-512/unet/config.json",
            "llm/tiny-llama/config.json",
            "llm/tiny-qwen2/config.json",
        ],
    ),
    ("gguf", &["llm/tiny-llama.gguf", "llm/tiny-qwen2.gguf"]),
    ("story_writer", &["llm/llm-golden.json"]),
    (
        "embedding_and_lora",
        &[
            "embeddings/mia.safetensors",
            "embeddings/wrong-dimension.safetensors",
            "loras/kid.safetensors",
            "loras/kid.lora.safetensors",
            "loras/tiny-sd2-peft.safetensors",
        ],
    ),
    (
        "photo",
        &[
            "photos/toddler-1.jpg",
            "photos/toddler-2.png",
            "photos/toddler-3.webp",
        ],
    ),
];

const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Inputs are capped at this many bytes: every parser reads a header, then tensors whose count
/// the header states, so larger inputs only repeat work (a 121 KB LoRA seed ran at 388 exec/s).
const MAX_LEN: &str = "-max_len=32768";

/// Every target, or only `only`.
pub fn run_all(runs: &str, only: Option<&str>) -> Result {
    runs.parse::<u64>()
        .map_err(|_| format!("RUNS must be a number, not {runs}"))?;
    let engine = root().join("engine");
    if !Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
    {
        run(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
        )
        .map_err(|error| format!("fuzzing needs a nightly Rust toolchain: {error}"))?;
    }
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(CARGO_FUZZ_VERSION));
    if !installed {
        run(
            "cargo",
            &[
                "install",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ_VERSION,
                "--locked",
            ],
        )?;
    }
    let mut summary = Vec::new();
    let targets = TARGETS
        .iter()
        .filter(|(target, _)| only.is_none_or(|only| only == *target));
    for &(target, seeds) in targets {
        let corpus = engine.join("fuzz/corpus").join(target);
        fs::create_dir_all(&corpus).map_err(|error| error.to_string())?;
        for seed in seeds {
            let from = root().join("models/fixtures").join(seed);
            let name = seed.replace('/', "--");
            fs::copy(&from, corpus.join(name))
                .map_err(|error| format!("{}: {error}", from.display()))?;
        }
        let started = Instant::now();
        // Its sanitizer build stays in engine/fuzz/target, out of the shared target folder.
        let output = Command::new("cargo")
            .current_dir(&engine)
            .env_remove("CARGO_TARGET_DIR")
            .args(["+nightly", "fuzz", "run", "--release", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-runs={runs}"),
                "-rss_limit_mb=4096",
                "-timeout=30",
                "-print_final_stats=1",
                MAX_LEN,
            ])
            .output()
            .map_err(|error| format!("could not start cargo fuzz: {error}"))?;
        let log = String::from_utf8_lossy(&output.stderr).into_owned();
        fs::write(engine.join(format!("fuzz/{target}.log")), &log)
            .map_err(|error| error.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        let line = |prefix: &str| {
            log.lines()
                .rev()
                .find(|line| line.starts_with(prefix))
                .unwrap_or("")
                .to_owned()
        };
        let done = line("Done ");
        let coverage = log
            .lines()
            .rev()
            .find(|line| line.contains(" cov: "))
            .and_then(|line| line.split(" cov: ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_owned();
        let crashed = !output.status.success();
        eprintln!(
            "{target}: {} ({seconds:.0} s wall, coverage {coverage} edges){}",
            if done.is_empty() { "no summary" } else { &done },
            if crashed {
                " — FAILED, see the log"
            } else {
                ""
            }
        );
        summary.push((target, done, coverage, seconds, crashed));
    }
    println!("| target | executions | wall time | coverage (edges) | crashes |");
    println!("|---|---|---|---|---|");
    for (target, done, coverage, seconds, crashed) in &summary {
        println!(
            "| `{target}` | {done} | {seconds:.0} s | {coverage} | {} |",
            if *crashed {
                "yes (engine/fuzz/artifacts)"
            } else {
                "0"
            }
        );
    }
    if summary.iter().any(|entry| entry.4) {
        return Err("a fuzz target failed: logs in engine/fuzz/*.log".into());
    }
    Ok(())
}
