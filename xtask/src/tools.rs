//! Installs the pinned tools a fresh machine lacks. Everything is built from crates.io or taken
//! from Debian and npm: no step downloads a prebuilt binary.

use std::path::Path;
use std::process::Command;

use crate::{Result, root, run};

const TRUNK_VERSION: &str = "0.21.14";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The wasm32 target, trunk and the wasm-bindgen-cli that matches Cargo.lock.
pub fn setup() -> Result {
    run("rustup", &["target", "add", WASM_TARGET])?;
    if !reports_version("trunk", TRUNK_VERSION) {
        run(
            "cargo",
            &["install", "trunk", "--version", TRUNK_VERSION, "--locked"],
        )?;
    }
    let wasm_bindgen = locked_version("wasm-bindgen")?;
    if !reports_version("wasm-bindgen", &wasm_bindgen) {
        // Not `--locked`: the CLI's own lockfile pins a crate version that crates.io no longer serves.
        run(
            "cargo",
            &["install", "wasm-bindgen-cli", "--version", &wasm_bindgen],
        )?;
    }
    face_models()
}

/// The face detector's and descriptor's files (tfjs weights manifests and their `.bin`s): the
/// app serves them (`public/engine-worker-faces/`, cached on first use like the engine) and the
/// engine's tests read them there. From npm, pinned by `xtask/faces`' lockfile.
pub const FACE_MODEL_FILES: [&str; 4] = [
    "tiny_face_detector_model-weights_manifest.json",
    "tiny_face_detector_model.bin",
    "face_recognition_model-weights_manifest.json",
    "face_recognition_model.bin",
];

fn face_models() -> Result {
    let served = root().join("public/engine-worker-faces");
    if FACE_MODEL_FILES
        .iter()
        .all(|file| served.join(file).exists())
    {
        return Ok(());
    }
    let package = root().join("xtask/faces/node_modules/@vladmandic/face-api/model");
    if !package.exists() {
        run(
            "npm",
            &[
                "ci",
                "--prefix",
                "xtask/faces",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
            ],
        )?;
    }
    std::fs::create_dir_all(&served).map_err(|error| format!("{}: {error}", served.display()))?;
    for file in FACE_MODEL_FILES {
        std::fs::copy(package.join(file), served.join(file))
            .map_err(|error| format!("face model {file}: {error}"))?;
    }
    Ok(())
}

/// What the tests need from Debian — Chromium for the browser tests, Mesa's lavapipe (a Vulkan
/// driver on the CPU) for the GPU-backend test — and the browser tests' npm packages.
pub fn setup_test_machine() -> Result {
    let lavapipe = Path::new("/usr/share/vulkan/icd.d")
        .read_dir()
        .is_ok_and(|mut entries| {
            entries.any(|entry| {
                entry.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
            })
        });
    let missing: Vec<&str> = [
        (!Path::new("/usr/bin/chromium").exists()).then_some("chromium"),
        (!lavapipe).then_some("mesa-vulkan-drivers"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        let root_user = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.trim_ascii() == b"0");
        let sudo: &[&str] = if root_user { &[] } else { &["sudo"] };
        let apt = |args: &[&str]| {
            let mut command: Vec<&str> = sudo.to_vec();
            command.extend_from_slice(args);
            run(command[0], &command[1..])
        };
        apt(&["apt-get", "update"])?;
        let mut install = vec!["apt-get", "install", "-y", "--no-install-recommends"];
        install.extend(missing);
        apt(&install)?;
    }
    run(
        "npm",
        &["ci", "--prefix", "tests", "--no-audit", "--no-fund"],
    )
}

fn reports_version(program: &str, version: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|output| {
            String::from_utf8_lossy(&output.stdout)
                .split_whitespace()
                .any(|word| word == version)
        })
}

/// The version of `package` that Cargo.lock resolved.
fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|error| format!("Cargo.lock: {error}"))?;
    let name_line = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == name_line
            && let Some(version) = lines
                .next()
                .and_then(|line| line.strip_prefix("version = \""))
        {
            return Ok(version.trim_end_matches('"').to_owned());
        }
    }
    Err(format!("Cargo.lock has no `{package}` package"))
}

/// binaryen's `wasm-opt` from npm (`xtask/npm`, pinned by its lockfile): Debian's breaks the
/// output. Installed on first use; returns the program's path.
pub fn wasm_opt() -> Result<std::path::PathBuf> {
    let program = root().join("xtask/npm/node_modules/.bin/wasm-opt");
    if !program.exists() {
        run(
            "npm",
            &["ci", "--prefix", "xtask/npm", "--no-audit", "--no-fund"],
        )?;
    }
    Ok(program)
}
