//! Trunk post-build hook: fills in the service worker's precache list and version, and the model
//! hosts in the Content-Security-Policy, in Trunk's staging folder.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Result, root};

const SERVICE_WORKER: &str = "sw.js";
/// The engine worker's files: large, and not needed to show the app, so the service worker
/// caches them the first time the engine starts instead of at install.
const LAZY_PREFIX: &str = "/engine-worker";
/// The engine bench (bench.html and its module): a developer tool the service worker leaves to
/// the network, so parents never download it.
const DEVELOPER_FILES: [&str; 4] = [
    "/bench.html",
    "/bench-boot.js",
    "/toddler-bench.js",
    "/toddler-bench_bg.wasm",
];
/// What app/index.html's Content-Security-Policy says until the model host is filled in.
const CONNECT_SRC_PLACEHOLDER: &str = "connect-src 'self' MODEL_HOSTS";

pub fn run() -> Result {
    let staging = std::env::var_os("TRUNK_STAGING_DIR")
        .map(PathBuf::from)
        .ok_or("`precache` runs as Trunk's post_build hook (TRUNK_STAGING_DIR is not set)")?;
    for page in ["index.html", "bench.html"] {
        write_model_hosts(&staging.join(page))?;
    }
    if let Some(wasm_opt) = std::env::var_os("TODDLER_WASM_OPT") {
        optimise_modules(&staging, Path::new(&wasm_opt))?;
    }
    let mut files = Vec::new();
    collect_files(&staging, &staging, &mut files)?;
    files.retain(|path| {
        path != &format!("/{SERVICE_WORKER}") && !DEVELOPER_FILES.contains(&path.as_str())
    });
    files.sort();
    // The version is a hash of every cached file, so any change to the app installs a new worker.
    let mut version = Fnv1a::default();
    for path in &files {
        version.write(path.as_bytes());
        version.write(&read(&staging.join(&path[1..]))?);
    }
    let quoted = |lazy: bool| {
        files
            .iter()
            .filter(|path| path.starts_with(LAZY_PREFIX) == lazy)
            .map(|path| format!("'{path}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let worker_path = staging.join(SERVICE_WORKER);
    let worker = read_text(&worker_path)?
        .replacen(
            "'BUILD_VERSION'",
            &format!("'{:016x}'", version.finish()),
            1,
        )
        .replacen("PRECACHE_FILES", &format!("[{}]", quoted(false)), 1)
        .replacen("LAZY_FILES", &format!("[{}]", quoted(true)), 1);
    fs::write(&worker_path, worker)
        .map_err(|error| format!("{}: {error}", worker_path.display()))?;
    eprintln!(
        "precache: {} files, version {:016x}",
        files.len(),
        version.finish()
    );
    Ok(())
}

/// binaryen's `wasm-opt -Oz` on every staged module, in place (`cargo xtask dist`). The features
/// are those Rust's wasm32 target emits; without them wasm-opt rejects the module.
fn optimise_modules(staging: &Path, wasm_opt: &Path) -> Result {
    let mut modules: Vec<PathBuf> = fs::read_dir(staging)
        .map_err(|error| format!("{}: {error}", staging.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "wasm")
        })
        .collect();
    modules.sort();
    for module in modules {
        let before = fs::metadata(&module).map_or(0, |metadata| metadata.len());
        let status = std::process::Command::new(wasm_opt)
            .arg("-Oz")
            .args([
                "--enable-bulk-memory",
                "--enable-nontrapping-float-to-int",
                "--enable-sign-ext",
                "--enable-mutable-globals",
                "--enable-reference-types",
                "--enable-multivalue",
                "--enable-simd",
            ])
            .arg(&module)
            .arg("-o")
            .arg(&module)
            .status()
            .map_err(|error| format!("{}: {error}", wasm_opt.display()))?;
        if !status.success() {
            return Err(format!(
                "wasm-opt failed on {} ({status})",
                module.display()
            ));
        }
        let after = fs::metadata(&module).map_or(0, |metadata| metadata.len());
        eprintln!(
            "wasm-opt: {} {:.1} → {:.1} MiB",
            module.display(),
            before as f64 / 1048576.0,
            after as f64 / 1048576.0
        );
    }
    Ok(())
}

/// The `connect-src` hosts: exactly the hosts a model download touches (models/registry.json's
/// `download_hosts`: the hub, which answers `resolve` URLs with redirects, and its CDN hosts),
/// into a page's Content-Security-Policy.
fn write_model_hosts(page: &Path) -> Result {
    let registry_path = root().join("models/registry.json");
    let registry: serde_json::Value = serde_json::from_str(&read_text(&registry_path)?)
        .map_err(|error| format!("{}: {error}", registry_path.display()))?;
    let hosts: Vec<&str> = registry["download_hosts"]
        .as_array()
        .ok_or("models/registry.json has no \"download_hosts\" list")?
        .iter()
        .map(|host| host.as_str().ok_or("download_hosts holds a non-string"))
        .collect::<std::result::Result<_, _>>()?;
    if let Some(bad) = hosts
        .iter()
        .find(|host| !host.starts_with("https://") || host[8..].contains(['/', ' ', ';', '\'']))
    {
        return Err(format!("download_hosts: `{bad}` is not an https origin"));
    }
    let hosts = hosts.join(" ");
    let html = read_text(page)?;
    if !html.contains(CONNECT_SRC_PLACEHOLDER) {
        return Err(format!(
            "{} has no `{CONNECT_SRC_PLACEHOLDER}` in its Content-Security-Policy",
            page.display()
        ));
    }
    let connect_src = format!("connect-src 'self' {hosts}");
    fs::write(
        page,
        html.replacen(CONNECT_SRC_PLACEHOLDER, &connect_src, 1),
    )
    .map_err(|error| format!("{}: {error}", page.display()))
}

fn collect_files(base: &Path, folder: &Path, files: &mut Vec<String>) -> Result {
    for entry in fs::read_dir(folder).map_err(|error| format!("{}: {error}", folder.display()))? {
        let path = entry.map_err(|error| error.to_string())?.path();
        if path.is_dir() {
            collect_files(base, &path, files)?;
        } else {
            let relative = path.strip_prefix(base).expect("entries lie inside base");
            files.push(format!(
                "/{}",
                relative.to_string_lossy().replace('\\', "/")
            ));
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|error| format!("{}: {error}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))
}

/// 64-bit FNV-1a: a stable content fingerprint (std's hasher may change between Rust releases).
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        let hash = |text: &str| {
            let mut hasher = Fnv1a::default();
            hasher.write(text.as_bytes());
            hasher.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
