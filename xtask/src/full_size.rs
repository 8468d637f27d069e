//! A full-size SD-Turbo with seeded random weights, made from the committed layout
//! (`models/fixtures/sd-turbo-layout`: configs and every tensor's name and shape, read from a model
//! that diffusers made, see `models/make_full_size_layout.py`): 2.5 GB of fp16 files as the hub
//! ships them, for the tests and benchmarks at the real size. CI has no torch, so it is made here;
//! it is kept in the cache folder and made again only when the layout or the recipe changes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::{Result, root};

/// Changes whenever the values written change, so a cached copy made by an older recipe is
/// replaced.
const RECIPE: &str = "uniform 1/sqrt(fan_in), norms 1/0, embeddings 0.035, splitmix64 v1";

/// Where the model is kept between runs: beside the persistent build folder.
pub fn default_folder() -> PathBuf {
    let cache = std::env::var("HOME")
        .map(|home| PathBuf::from(home).join(".cache/toddlerstories"))
        .unwrap_or_else(|_| std::env::temp_dir().join("toddlerstories"));
    cache.join("models/sd-turbo-full-random")
}

/// Makes the model in `out` unless an up-to-date copy is already there.
pub fn make(out: &Path) -> Result {
    let layout = root().join("models/fixtures/sd-turbo-layout");
    let tensors_json = std::fs::read_to_string(layout.join("tensors.json"))
        .map_err(|error| format!("{}: {error}", layout.display()))?;
    let stamp = format!("{RECIPE}\n{}", fnv1a(tensors_json.as_bytes()));
    let stamp_file = out.join(".made-by-xtask");
    if std::fs::read_to_string(&stamp_file).is_ok_and(|made| made == stamp) {
        eprintln!("full-size model: up to date in {}", out.display());
        return Ok(());
    }
    let started = std::time::Instant::now();
    // Anything half made before goes: the stamp is written last.
    let _ = std::fs::remove_dir_all(out);
    copy_folder(&layout, out, &|name| name != "tensors.json")?;
    copy_folder(
        &root().join("models/fixtures/tiny-sd2/tokenizer"),
        &out.join("tokenizer"),
        &|_| true,
    )?;
    let files: BTreeMap<String, Vec<(String, String, Vec<usize>)>> =
        serde_json::from_str(&tensors_json).map_err(|error| format!("tensors.json: {error}"))?;
    let mut bytes = 0;
    for (file, tensors) in &files {
        bytes += write_safetensors(&out.join(file), tensors)?;
    }
    std::fs::write(&stamp_file, stamp).map_err(|error| error.to_string())?;
    eprintln!(
        "full-size model: {} MB written to {} in {:.0} s",
        bytes >> 20,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn copy_folder(from: &Path, to: &Path, keep: &dyn Fn(&str) -> bool) -> Result {
    let error = |error: std::io::Error| format!("copying {}: {error}", from.display());
    std::fs::create_dir_all(to).map_err(error)?;
    for entry in std::fs::read_dir(from).map_err(error)? {
        let path = entry.map_err(error)?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            copy_folder(&path, &to.join(&*name), keep)?;
        } else if keep(&name) {
            std::fs::copy(&path, to.join(&*name)).map_err(error)?;
        }
    }
    Ok(())
}

/// Writes one safetensors file of f16 tensors; returns its size.
fn write_safetensors(path: &Path, tensors: &[(String, String, Vec<usize>)]) -> Result<u64> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        if dtype != "F16" {
            return Err(format!("{name}: only F16 layouts are made, not {dtype}"));
        }
        let size = 2 * shape.iter().product::<usize>() as u64;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + size]}),
        );
        offset += size;
    }
    let mut header = serde_json::Value::Object(header).to_string().into_bytes();
    // The data section starts 8-byte aligned, as the safetensors writers do.
    header.resize(header.len().next_multiple_of(8), b' ');
    let error = |error: std::io::Error| format!("{}: {error}", path.display());
    std::fs::create_dir_all(path.parent().expect("a file in a folder")).map_err(error)?;
    let mut writer = BufWriter::with_capacity(1 << 20, File::create(path).map_err(error)?);
    writer
        .write_all(&(header.len() as u64).to_le_bytes())
        .map_err(error)?;
    writer.write_all(&header).map_err(error)?;
    let mut chunk = Vec::with_capacity(1 << 20);
    for (name, _, shape) in tensors {
        let mut random = SplitMix64(fnv1a(name.as_bytes()));
        let (centre, bound) = distribution(name, shape);
        for _ in 0..shape.iter().product::<usize>() {
            let value = centre + bound * (2.0 * random.unit() - 1.0);
            chunk.extend_from_slice(&half::f16::from_f32(value).to_le_bytes());
            if chunk.len() >= 1 << 20 {
                writer.write_all(&chunk).map_err(error)?;
                chunk.clear();
            }
        }
    }
    writer.write_all(&chunk).map_err(error)?;
    writer.flush().map_err(error)?;
    Ok(8 + header.len() as u64 + offset)
}

/// (centre, half-width) of the uniform values for a tensor: PyTorch's default layer init
/// (`1/sqrt(fan_in)`), norms at their identity (weight 1, bias 0), embeddings small, as
/// transformers initialises CLIP's — activations then stay in f16's range through every layer.
fn distribution(name: &str, shape: &[usize]) -> (f32, f32) {
    let layer = name.rsplit('.').nth(1).unwrap_or_default();
    let is_norm = layer.contains("norm");
    match (is_norm, name.ends_with(".weight"), shape.len()) {
        (true, true, _) => (1.0, 0.0),
        (true, false, _) => (0.0, 0.0),
        (false, true, 2) if layer.ends_with("embedding") => (0.0, 0.035),
        (false, true, rank) if rank >= 2 => {
            let fan_in: usize = shape[1..].iter().product();
            (0.0, 1.0 / (fan_in as f32).sqrt())
        }
        _ => (0.0, 0.01),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Sebastiano Vigna's splitmix64: small, seedable, good enough for weights.
struct SplitMix64(u64);

impl SplitMix64 {
    /// A value in [0, 1).
    fn unit(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_the_layer_kind() {
        assert_eq!(
            distribution("encoder.layers.0.layer_norm1.weight", &[1024]),
            (1.0, 0.0)
        );
        assert_eq!(distribution("conv_norm_out.bias", &[320]), (0.0, 0.0));
        assert_eq!(
            distribution("down_blocks.0.resnets.0.conv1.weight", &[320, 320, 3, 3]),
            (0.0, 1.0 / 2880f32.sqrt())
        );
        assert_eq!(
            distribution(
                "text_model.embeddings.token_embedding.weight",
                &[49408, 1024]
            ),
            (0.0, 0.035)
        );
        let mut random = SplitMix64(1);
        assert!(
            (0..1000)
                .map(|_| random.unit())
                .all(|v| (0.0..1.0).contains(&v))
        );
    }
}
