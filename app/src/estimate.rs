//! What a picture model will take on this device, told before a parent downloads gigabytes: the
//! engine counts the model's work from its configs and divides by rates it measured here (a few
//! seconds of kernels, once per device: kept in `localStorage`).

use std::collections::HashMap;

use leptos::prelude::*;
use protocol::{AvatarWork, DeviceInfo, DeviceSpeed, Estimate, Event, PictureWork, Request};
use serde::{Deserialize, Serialize};

use crate::engine::EngineWorker;
use crate::gpu::{self, GpuStatus};
use crate::model_store::{self, ModelEntry};
use crate::studio::{self, Preferences};

/// Where the measured rates are kept, with the device they were measured on.
const SPEED_KEY: &str = "toddler.device_speed";
/// The photos an avatar is usually learned from (3–10).
const TYPICAL_PHOTOS: usize = 5;

/// An estimate and the device it is for.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimated {
    pub device: DeviceInfo,
    pub estimate: Estimate,
}

#[derive(Serialize, Deserialize)]
struct KeptSpeed {
    device: String,
    speed: DeviceSpeed,
}

/// The device the rates belong to: the adapter, and the parent's backend and precision choices.
async fn device_key() -> String {
    let preferences = Preferences::read();
    let adapter = match gpu::probe().await {
        GpuStatus::Adapter(report) => report.name(),
        GpuStatus::NoAdapter | GpuStatus::NoWebGpu => "none".to_owned(),
    };
    format!(
        "{adapter}|{:?}|{:?}|{}",
        preferences.backend,
        preferences.precision,
        env!("CARGO_PKG_VERSION")
    )
}

fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

fn kept_speed(device: &str) -> Option<DeviceSpeed> {
    let text = local_storage()?.get_item(SPEED_KEY).ok()??;
    let kept: KeptSpeed = serde_json::from_str(&text).ok()?;
    (kept.device == device).then_some(kept.speed)
}

fn keep_speed(device: String, speed: DeviceSpeed) {
    if let (Some(storage), Ok(text)) = (
        local_storage(),
        serde_json::to_string(&KeptSpeed { device, speed }),
    ) {
        let _ = storage.set_item(SPEED_KEY, &text);
    }
}

/// `navigator.deviceMemory` (GB, rounded by the browser; Chromium only) in bytes.
fn device_memory_bytes() -> Option<u64> {
    let navigator = web_sys::window()?.navigator();
    let gigabytes = js_sys::Reflect::get(&navigator, &"deviceMemory".into())
        .ok()?
        .as_f64()?;
    (gigabytes > 0.0).then(|| (gigabytes * f64::from(1u32 << 30)) as u64)
}

/// The estimate for `model` at the app's settings: the first on a device measures it.
pub async fn for_model(model: &ModelEntry) -> Result<Estimated, String> {
    let preferences = Preferences::read();
    let defaults = model.defaults.clone();
    let side = preferences.picture_size;
    let picture = PictureWork {
        width: side,
        height: side,
        steps: defaults.as_ref().map_or(1, |defaults| defaults.steps),
        guidance: defaults.as_ref().map_or(0.0, |defaults| defaults.guidance),
    };
    let avatar = AvatarWork {
        resolution: preferences.avatar_resolution,
        steps: preferences.avatar_steps,
        photos: TYPICAL_PHOTOS,
    };
    let device = device_key().await;
    let engine = EngineWorker::get()?;
    let id = engine.next_id();
    let request = Request::Estimate {
        id,
        source: model.source().await,
        decoder: decoder_source().await,
        backend: preferences.backend,
        precision: preferences.precision,
        stored: model.stored_precision(),
        picture,
        avatar,
        device_memory_bytes: device_memory_bytes(),
        speed: kept_speed(&device),
    };
    match engine.call(id, &request, |_| {}).await {
        Ok((
            Event::Estimated {
                device: info,
                speed,
                estimate,
                ..
            },
            _,
        )) => {
            keep_speed(device, speed);
            Ok(Estimated {
                device: info,
                estimate,
            })
        }
        Ok(_) => Err("the engine answered something else".into()),
        Err(failure) => Err(failure.into()),
    }
}

/// The decoder pictures will be drawn with: the fast decoder (stored, or from the host).
async fn decoder_source() -> Option<protocol::ModelSource> {
    if Preferences::read().full_decoder {
        return None;
    }
    if let Some(stored) = studio::decoder().await {
        return Some(stored);
    }
    let registry = model_store::registry();
    let decoder = registry
        .models
        .iter()
        .find(|model| model.repo == registry.default_decoder)?;
    Some(decoder.source().await)
}

/// Each picture model's estimate on this device, by repo; measured when the Models screen opens
/// (the first time on a device the engine times its kernels for a few seconds).
#[derive(Clone, Copy)]
pub struct Estimates(LocalResource<HashMap<String, Result<Estimated, String>>>);

impl Estimates {
    /// Starts estimating `models` (the default model first).
    pub fn measure(mut models: Vec<ModelEntry>) -> Estimates {
        let default = model_store::registry().default_model.clone();
        models.sort_by_key(|model| model.repo != default);
        Estimates(LocalResource::new(move || {
            let models = models.clone();
            async move {
                let mut estimates = HashMap::new();
                // One after another: the first measures the device, the rest reuse its rates.
                for model in &models {
                    estimates.insert(model.repo.clone(), for_model(model).await);
                }
                estimates
            }
        }))
    }

    /// The default model's estimate, once there is one.
    pub fn of_default(self) -> Option<Result<Estimated, String>> {
        self.of(&model_store::registry().default_model)
    }

    pub fn of(self, repo: &str) -> Option<Result<Estimated, String>> {
        self.0
            .with(|estimates| estimates.as_ref()?.get(repo).cloned())
    }

    /// The smallest other picture model that draws here, with its estimate.
    pub fn smaller_than(self, repo: &str) -> Option<(ModelEntry, Estimated)> {
        self.0.with(|estimates| {
            let estimates = estimates.as_ref()?;
            model_store::registry()
                .models
                .iter()
                .filter(|model| model.role == "pipeline" && model.repo != repo)
                .filter_map(|model| match estimates.get(&model.repo) {
                    Some(Ok(estimated)) if estimated.estimate.draws() => {
                        Some((model.clone(), estimated.clone()))
                    }
                    _ => None,
                })
                .min_by_key(|(_, estimated)| estimated.estimate.picture_memory_bytes)
        })
    }
}

/// "about 20 seconds", "about 25 minutes", "about 3 hours", "about 26 days": a duration as a
/// parent reads it.
pub fn about(seconds: f64) -> String {
    let plural = |count: f64, unit: &str| {
        if count == 1.0 {
            format!("about 1 {unit}")
        } else {
            format!("about {count} {unit}s")
        }
    };
    if seconds < 10.0 {
        plural(seconds.round().max(1.0), "second")
    } else if seconds < 90.0 {
        plural((seconds / 5.0).round() * 5.0, "second")
    } else if seconds < 90.0 * 60.0 {
        plural((seconds / 60.0).round(), "minute")
    } else if seconds < 48.0 * 3600.0 {
        plural((seconds / 3600.0).round(), "hour")
    } else {
        plural((seconds / 86400.0).round(), "day")
    }
}

/// How the model runs here, in a few words.
pub fn path_words(device: &DeviceInfo) -> &'static str {
    match (device.backend.as_str(), device.precision) {
        ("cpu", _) => "on the processor (this browser cannot use the graphics chip)",
        (_, protocol::Precision::F16) => "on the graphics chip, in half precision",
        _ => "on the graphics chip, in full precision",
    }
}
