//! Choosing where the engine computes.

use burn::tensor::{DType, Device, DeviceKind, FloatDType, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{EngineError, Result};

/// Where tensors live and kernels run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComputeBackend {
    /// The GPU through wgpu: WebGPU in the browser, Vulkan or Metal natively.
    Gpu,
    /// burn's portable CPU backend (`flex`): always available, much slower.
    Cpu,
}

impl ComputeBackend {
    /// The burn device for this backend. On wasm the GPU device must still be initialised
    /// asynchronously before the first tensor is created.
    pub fn device(self) -> Device {
        match self {
            ComputeBackend::Gpu => Device::wgpu(DeviceKind::DefaultDevice),
            ComputeBackend::Cpu => Device::flex(),
        }
    }

    /// The device with `precision` as its float type (or, for `None`, the fastest this device
    /// computes correctly: see [`Precision::best_for`]). Must run before any tensor exists on
    /// the device: burn fixes a device's default float type at its first tensor, and every
    /// module then loads its weights in that type (burn never mixes types within one op).
    pub fn device_with(self, precision: Option<Precision>) -> Result<(Device, Precision)> {
        let mut device = self.device();
        let precision = precision.unwrap_or_else(|| Precision::best_for(self, &device));
        if !device.supports_dtype(precision.dtype()) {
            return Err(EngineError::Usage(format!(
                "this device cannot compute in {precision} (a GPU needs the `shader-f16` feature \
                 for f16); use --dtype f32"
            )));
        }
        set_convolve_through_matmuls(self == ComputeBackend::Gpu);
        let configured = configure(&mut device, precision);
        if configured != precision {
            return Err(EngineError::Usage(format!(
                "the device already computes in {configured}, not {precision}"
            )));
        }
        Ok((device, precision))
    }
}

/// A GPU device that may use only WebGPU's default memory limits — 128 MiB per storage binding,
/// 256 MiB per buffer, 8 storage buffers per stage, 16 KiB of workgroup memory — whatever more
/// the adapter grants: what a parent's GPU may offer, proven on adapters that grant more
/// (SwiftShader: 1 GiB; lavapipe). Also returns the adapter's name and whether it has
/// `shader-f16`.
///
/// The workgroup-size limits stay the adapter's: cubecl sizes its workgroups from the adapter's
/// limits, not the device's.
pub async fn gpu_within_default_limits() -> Result<(Device, String, bool, u64)> {
    use burn::tensor::wgpu::{WgpuSetup, wgpu};
    let failed = |what: &str, error: String| {
        EngineError::Usage(format!("could not set up the GPU ({what}): {error}"))
    };
    let backends = if cfg!(target_family = "wasm") {
        wgpu::Backends::BROWSER_WEBGPU
    } else {
        wgpu::Backends::all()
    };
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = backends;
    let instance = wgpu::Instance::new(descriptor);
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|error| failed("no adapter", error.to_string()))?;
    let granted = adapter.limits();
    let limits = wgpu::Limits {
        max_compute_invocations_per_workgroup: granted.max_compute_invocations_per_workgroup,
        max_compute_workgroup_size_x: granted.max_compute_workgroup_size_x,
        max_compute_workgroup_size_y: granted.max_compute_workgroup_size_y,
        max_compute_workgroup_size_z: granted.max_compute_workgroup_size_z,
        max_compute_workgroups_per_dimension: granted.max_compute_workgroups_per_dimension,
        ..wgpu::Limits::default()
    };
    let features = adapter
        .features()
        .difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS);
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: None,
            required_features: features,
            required_limits: limits,
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            trace: wgpu::Trace::Off,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
        })
        .await
        .map_err(|error| failed("the device", error.to_string()))?;
    let info = adapter.get_info();
    let max_binding = device.limits().max_storage_buffer_binding_size;
    let setup = WgpuSetup {
        instance,
        adapter,
        device,
        queue,
        backend: info.backend,
    };
    let device = Device::wgpu_options()
        .setup(setup)
        .init()
        .map_err(|error| failed("burn's runtime", error.to_string()))?;
    Ok((
        device,
        info.name,
        features.contains(wgpu::Features::SHADER_F16),
        max_binding,
    ))
}

static CONV_MATMULS: AtomicBool = AtomicBool::new(false);

/// Whether `models::conv` convolves through matmuls: yes on a GPU (set where the device is
/// chosen), no on burn's CPU backend, whose own convolution already is im2col + GEMM without the
/// extra copies, and no on a software WebGPU adapter (SwiftShader), which charges about a
/// millisecond per dispatch, so that one direct kernel beats the dozen dispatches of a banded
/// im2col.
pub fn set_convolve_through_matmuls(on: bool) {
    CONV_MATMULS.store(on, Ordering::Relaxed);
}

/// What [`set_convolve_through_matmuls`] last chose.
pub fn convolve_through_matmuls() -> bool {
    CONV_MATMULS.load(Ordering::Relaxed)
}

/// A tensor's values as f32, read back without blocking (WebGPU has no blocking reads).
pub async fn read_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let failed = |error: String| {
        EngineError::Usage(format!(
            "could not read a result back from the device: {error}"
        ))
    };
    tensor
        .into_data_async()
        .await
        .map_err(|error| failed(format!("{error:?}")))?
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|error| failed(format!("{error:?}")))
}

/// Makes `precision` the device's float type if no tensor exists on it yet; returns the type it
/// computes in (a device used before keeps its type: burn fixes it at the first tensor).
pub fn configure(device: &mut Device, precision: Precision) -> Precision {
    match device.configure(FloatDType::from(precision)) {
        Ok(()) => precision,
        Err(_) => precision_of(device),
    }
}

/// The float type weights are held and computed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Half precision: half the memory and, on GPUs with fast f16, about twice the speed.
    /// Norm statistics, softmax and the scheduler stay in f32.
    F16,
    F32,
}

impl Precision {
    /// f16 on a GPU that computes in it (WebGPU's `shader-f16`, Vulkan's `shaderFloat16`), f32
    /// elsewhere: SwiftShader has no f16 at all, and burn's CPU backend draws exactly in f32 from
    /// weights held in f16 (`load_dtype`). (Training a full-size avatar on the CPU needs f16
    /// arithmetic to fit in memory: asked for, the CPU computes in f16, docs/benchmarks.md.)
    pub fn best_for(backend: ComputeBackend, device: &Device) -> Self {
        match backend {
            ComputeBackend::Gpu if device.supports_dtype(DType::F16) => Precision::F16,
            _ => Precision::F32,
        }
    }

    pub fn dtype(self) -> DType {
        match self {
            Precision::F16 => DType::F16,
            Precision::F32 => DType::F32,
        }
    }
}

impl From<protocol::Precision> for Precision {
    fn from(precision: protocol::Precision) -> Self {
        match precision {
            protocol::Precision::F16 => Precision::F16,
            protocol::Precision::F32 => Precision::F32,
        }
    }
}

impl From<Precision> for protocol::Precision {
    fn from(precision: Precision) -> Self {
        match precision {
            Precision::F16 => protocol::Precision::F16,
            Precision::F32 => protocol::Precision::F32,
        }
    }
}

impl From<Precision> for FloatDType {
    fn from(precision: Precision) -> Self {
        match precision {
            Precision::F16 => FloatDType::F16,
            Precision::F32 => FloatDType::F32,
        }
    }
}

/// The float type a device's modules and tensors are created in.
pub fn precision_of(device: &Device) -> Precision {
    match device.settings().float_dtype {
        FloatDType::F16 => Precision::F16,
        _ => Precision::F32,
    }
}

/// `tensor` in f32 (burn's cast leaves an f32 tensor as it is): the precision-sensitive
/// islands of an f16 model.
pub fn upcast<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    tensor.cast(FloatDType::F32)
}

/// The float type a device computes in: activations, and the weights as each layer reads them.
pub fn compute_dtype(device: &Device) -> DType {
    precision_of(device).dtype()
}

/// The float type weights are loaded into on `device`; `None` keeps each tensor as its file
/// stores it (f16, bf16 or f32).
///
/// burn's CPU backend computing in f32 keeps half-precision files as they are and widens each
/// weight when a layer reads it (`models::held_weights`): SD-Turbo's UNet and text encoder are
/// 2.4 GB in f16 but 4.9 GB in f32, beyond the 4 GiB a browser gives WebAssembly, and the
/// widening is exact, so the results are those of f32 weights. A GPU holds what it computes in
/// (f16 needs `shader-f16`; without it no f16 buffer can be read at all).
pub fn load_dtype(device: &Device) -> Option<DType> {
    let computes_f32 = precision_of(device) == Precision::F32;
    if computes_f32 && *device == Device::flex() {
        None
    } else {
        Some(compute_dtype(device))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Precision::F16 => "f16",
            Precision::F32 => "f32",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = EngineError;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "f16" | "fp16" | "half" => Ok(Precision::F16),
            "f32" | "fp32" | "float" => Ok(Precision::F32),
            other => Err(EngineError::Usage(format!(
                "unknown precision `{other}`: expected `f16` or `f32`"
            ))),
        }
    }
}

impl std::str::FromStr for ComputeBackend {
    type Err = UnknownBackend;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "gpu" | "webgpu" | "wgpu" => Ok(ComputeBackend::Gpu),
            "cpu" => Ok(ComputeBackend::Cpu),
            other => Err(UnknownBackend(other.to_owned())),
        }
    }
}

/// A backend name that is neither `gpu` (`webgpu`) nor `cpu`.
#[derive(Debug, thiserror::Error)]
#[error("unknown backend `{0}`: expected `webgpu` (or `gpu`) or `cpu`")]
pub struct UnknownBackend(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::Tensor;

    #[test]
    fn cpu_backend_runs_a_matmul() {
        let device = ComputeBackend::Cpu.device();
        let a = Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
        let b = Tensor::<2>::from_floats([[5.0, 6.0], [7.0, 8.0]], &device);
        let product: Vec<f32> = a.matmul(b).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(product, vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn backend_names_parse_and_unknown_names_are_rejected() {
        assert_eq!(
            "webgpu".parse::<ComputeBackend>().unwrap(),
            ComputeBackend::Gpu
        );
        assert_eq!(
            "cpu".parse::<ComputeBackend>().unwrap(),
            ComputeBackend::Cpu
        );
        let error = "cuda".parse::<ComputeBackend>().unwrap_err();
        assert!(error.to_string().contains("cuda"));
    }
}
