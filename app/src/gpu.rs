//! What this device's WebGPU can do, read straight from `navigator.gpu`.
//!
//! Read through `js_sys::Reflect` because web-sys's WebGPU bindings are behind an unstable cfg
//! flag that would also change how every other wasm crate is compiled.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The outcome of looking for a WebGPU adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum GpuStatus {
    /// The browser has no WebGPU at all.
    NoWebGpu,
    /// WebGPU exists but the browser offered no adapter (blocklisted or disabled GPU).
    NoAdapter,
    /// An adapter the engine can use.
    Adapter(AdapterReport),
}

/// The facts about an adapter that decide which models and sizes will run.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterReport {
    pub vendor: String,
    pub architecture: String,
    pub description: String,
    /// A software adapter (e.g. SwiftShader): correct but very slow.
    pub is_fallback: bool,
    /// Half-precision shaders: halves the memory the model needs.
    pub shader_f16: bool,
    pub max_buffer_size: f64,
    pub max_storage_buffer_binding_size: f64,
    pub max_compute_workgroup_storage_size: f64,
    pub max_compute_invocations_per_workgroup: f64,
}

impl AdapterReport {
    /// A short human name: "google swiftshader", "nvidia ampere", …
    pub fn name(&self) -> String {
        let parts: Vec<&str> = [
            self.vendor.as_str(),
            self.architecture.as_str(),
            self.description.as_str(),
        ]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect();
        if parts.is_empty() {
            "an unnamed graphics adapter".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// Asks the browser for a high-performance adapter and reports what it offers.
pub async fn probe() -> GpuStatus {
    match request_adapter().await {
        Ok(Some(adapter)) => GpuStatus::Adapter(read_adapter(&adapter)),
        Ok(None) => GpuStatus::NoAdapter,
        Err(NoApi) => GpuStatus::NoWebGpu,
    }
}

struct NoApi;

async fn request_adapter() -> Result<Option<JsValue>, NoApi> {
    let navigator = js_sys::global()
        .unchecked_into::<web_sys::Window>()
        .navigator();
    let gpu = Reflect::get(&navigator, &"gpu".into()).map_err(|_| NoApi)?;
    if gpu.is_undefined() || gpu.is_null() {
        return Err(NoApi);
    }
    let options = js_sys::Object::new();
    let _ = Reflect::set(
        &options,
        &"powerPreference".into(),
        &"high-performance".into(),
    );
    let promise = call_method(&gpu, "requestAdapter", &options).ok_or(NoApi)?;
    // A rejected promise means the browser refused WebGPU altogether; treat it as "no adapter".
    let adapter = JsFuture::from(promise.unchecked_into::<Promise>())
        .await
        .ok();
    Ok(adapter.filter(|adapter| !adapter.is_null() && !adapter.is_undefined()))
}

fn read_adapter(adapter: &JsValue) -> AdapterReport {
    let info = get(adapter, "info");
    let limits = get(adapter, "limits");
    let features = get(adapter, "features");
    let shader_f16 = call_method(&features, "has", &"shader-f16".into())
        .and_then(|has| has.as_bool())
        .unwrap_or(false);
    // `isFallbackAdapter` moved from the adapter onto `info` in newer browsers.
    let is_fallback = get(&info, "isFallbackAdapter")
        .as_bool()
        .or_else(|| get(adapter, "isFallbackAdapter").as_bool())
        .unwrap_or(false);
    AdapterReport {
        vendor: get(&info, "vendor").as_string().unwrap_or_default(),
        architecture: get(&info, "architecture").as_string().unwrap_or_default(),
        description: get(&info, "description").as_string().unwrap_or_default(),
        is_fallback,
        shader_f16,
        max_buffer_size: get(&limits, "maxBufferSize").as_f64().unwrap_or(0.0),
        max_storage_buffer_binding_size: get(&limits, "maxStorageBufferBindingSize")
            .as_f64()
            .unwrap_or(0.0),
        max_compute_workgroup_storage_size: get(&limits, "maxComputeWorkgroupStorageSize")
            .as_f64()
            .unwrap_or(0.0),
        max_compute_invocations_per_workgroup: get(&limits, "maxComputeInvocationsPerWorkgroup")
            .as_f64()
            .unwrap_or(0.0),
    }
}

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

fn call_method(object: &JsValue, name: &str, argument: &JsValue) -> Option<JsValue> {
    let method = get(object, name).dyn_into::<Function>().ok()?;
    method.call1(object, argument).ok()
}

/// Bytes as a parent reads them: "1 GB", "128 MB".
pub fn format_bytes(bytes: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    const GIB: f64 = 1024.0 * MIB;
    if bytes >= GIB {
        format!("{:.1} GB", bytes / GIB).replace(".0 GB", " GB")
    } else {
        format!("{:.0} MB", bytes / MIB)
    }
}
