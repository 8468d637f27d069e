//! The worker's device: WebGPU with the adapter's own limits where the browser offers an
//! adapter, else burn's CPU backend with the reason in words; the precision it computes in.

use std::cell::RefCell;
use std::rc::Rc;

use burn::tensor::{DType, Device};
use protocol::{Backend, DeviceInfo};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use super::state::State;
use super::{describe, scope};
use crate::device::{ComputeBackend, Precision, configure, set_convolve_through_matmuls};

/// The device for `backend` in `precision` (`None`: the best it computes correctly): WebGPU
/// when asked for (or `auto`) and available, else the CPU with the reason in words. f16 needs
/// `shader-f16`; without it, and on the CPU (where it gains nothing), the model runs in f32.
pub(crate) async fn device(
    state: &Rc<RefCell<State>>,
    backend: Backend,
    precision: Option<protocol::Precision>,
) -> (Device, DeviceInfo) {
    let (mut device, compute, mut info) = backend_device(state, backend).await;
    let wanted = match precision.map(Precision::from) {
        Some(Precision::F16) if device.supports_dtype(DType::F16) => Precision::F16,
        Some(_) => Precision::F32,
        None => Precision::best_for(compute, &device),
    };
    info.precision = configure(&mut device, wanted).into();
    set_convolve_through_matmuls(compute == ComputeBackend::Gpu && !info.software);
    (device, info)
}

/// The device `backend` asks for, which backend it turned out to be, and what the app is told.
async fn backend_device(
    state: &Rc<RefCell<State>>,
    backend: Backend,
) -> (Device, ComputeBackend, DeviceInfo) {
    let cpu = |fallback_reason| {
        let info = DeviceInfo {
            backend: "cpu".into(),
            adapter: "CPU".into(),
            f16: false,
            precision: protocol::Precision::F32,
            software: true,
            fallback_reason,
            max_binding_bytes: None,
        };
        (Device::flex(), ComputeBackend::Cpu, info)
    };
    if backend == Backend::Cpu {
        return cpu(None);
    }
    let tried = state.borrow().gpu.clone();
    let outcome = match tried {
        Some(outcome) => outcome,
        None => {
            let outcome = webgpu(backend == Backend::WebgpuDefaultLimits).await;
            state.borrow_mut().gpu = Some(outcome.clone());
            outcome
        }
    };
    match outcome {
        Ok((device, info)) => (device, ComputeBackend::Gpu, info),
        Err(reason) => cpu(Some(reason)),
    }
}

/// Sets up burn's WebGPU runtime with the adapter's own limits, or with WebGPU's defaults
/// (`default_limits`, see [`crate::device::gpu_within_default_limits`]).
async fn webgpu(default_limits: bool) -> std::result::Result<(Device, DeviceInfo), String> {
    const NO_GPU: &str = "This browser does not offer WebGPU here, so pictures are drawn on the \
        processor instead. That works, but it is much slower (minutes per picture).";
    let navigator = scope().navigator();
    let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or(JsValue::UNDEFINED);
    if gpu.is_undefined() || gpu.is_null() {
        return Err(NO_GPU.into());
    }
    // A browser may expose navigator.gpu yet have no adapter (blocklisted or software-only).
    // (web-sys's WebGPU types are behind an unstable cfg; one call through Reflect will do.)
    let request_adapter = js_sys::Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|function| function.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| NO_GPU.to_owned())?;
    let promise = request_adapter
        .call0(&gpu)
        .map_err(|error| format!("{NO_GPU} ({})", describe(&error)))?;
    let adapter = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .map_err(|error| format!("{NO_GPU} ({})", describe(&error)))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err(NO_GPU.into());
    }
    let (device, f16, max_binding) = if default_limits {
        let (device, _, f16, max_binding) = crate::device::gpu_within_default_limits()
            .await
            .map_err(|error| format!("{NO_GPU} ({error})"))?;
        (device, f16, max_binding)
    } else {
        let (device, setup) = Device::wgpu_options()
            .init_with_setup_async()
            .await
            .map_err(|error| format!("{NO_GPU} ({error})"))?;
        let f16 = setup
            .adapter
            .features()
            .contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16);
        let max_binding = setup.device.limits().max_storage_buffer_binding_size;
        (device, f16, max_binding)
    };
    let name = adapter_name(&adapter);
    let software = is_software(&adapter, &name);
    Ok((
        device,
        DeviceInfo {
            backend: "webgpu".into(),
            adapter: name,
            f16,
            precision: protocol::Precision::F32,
            software,
            fallback_reason: None,
            max_binding_bytes: Some(max_binding),
        },
    ))
}

/// A software adapter: the browser says so (`isFallbackAdapter`, on `info` in newer browsers), or
/// it is SwiftShader by name.
fn is_software(adapter: &JsValue, name: &str) -> bool {
    let flag = |holder: &JsValue| {
        js_sys::Reflect::get(holder, &"isFallbackAdapter".into())
            .ok()
            .and_then(|value| value.as_bool())
    };
    let info = js_sys::Reflect::get(adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    flag(&info).or_else(|| flag(adapter)).unwrap_or(false)
        || name.to_lowercase().contains("swiftshader")
}

/// The adapter as the browser names it (`GPUAdapter.info`): its description, else vendor and
/// architecture (SwiftShader gives `google swiftshader`).
fn adapter_name(adapter: &JsValue) -> String {
    let info = js_sys::Reflect::get(adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    let field = |name: &str| {
        js_sys::Reflect::get(&info, &name.into())
            .ok()
            .and_then(|value| value.as_string())
            .filter(|value| !value.is_empty())
    };
    field("description").unwrap_or_else(|| {
        [field("vendor"), field("architecture")]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    })
}
