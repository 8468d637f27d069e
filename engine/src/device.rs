//! Choosing where the engine computes.

use burn::tensor::{Device, DeviceKind};
use serde::{Deserialize, Serialize};

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
