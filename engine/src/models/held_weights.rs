//! Weights held in half precision, read in the device's compute type.
//!
//! burn's CPU backend (the browser's fallback without WebGPU) computes in f32 but keeps the f16
//! or bf16 weights of the model's files as they are (`device::load_dtype`): SD-Turbo then fits in
//! WebAssembly's 4 GiB. A layer widens its weights when it reads them — one layer's worth of f32
//! at a time — through burn's parameter reparameterization, so no layer's code changes. The
//! widening is exact (every f16 and bf16 value is an f32), so the results are those of f32
//! weights.
//!
//! A model is viewed this way for one call ([`for_compute`]); the stored model never carries the
//! widening, so LoRA terms (`models::lora`, themselves reparameterizations) attach to it as
//! before and widen their base themselves ([`to_compute_dtype`]).

use burn::module::{Module, Param, Reparameterization, Reparameterizer};
use burn::tensor::{DType, FloatDType, Tensor};

use crate::device::{Precision, precision_of};

/// Reads a held weight in its device's compute type.
#[derive(Module, Debug)]
pub struct Widen {
    /// burn's module derive wants a field; the widening needs none.
    widening: bool,
}

impl Reparameterization for Widen {
    const NAME: &'static str = "widen";

    fn apply<const D: usize>(&self, base: Tensor<D>) -> Tensor<D> {
        to_compute_dtype(base)
    }
}

/// `tensor` in its device's compute type: f16 or bf16 widened on a device computing in f32,
/// anything else unchanged.
pub fn to_compute_dtype<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    if needs_widening(tensor.dtype(), &tensor.device()) {
        tensor.cast(FloatDType::F32)
    } else {
        tensor
    }
}

fn needs_widening(dtype: DType, device: &burn::tensor::Device) -> bool {
    matches!(dtype, DType::F16 | DType::BF16) && precision_of(device) == Precision::F32
}

/// Attaches [`Widen`] to the half-precision weights of a device that computes in f32.
struct AttachWiden;

impl Reparameterizer for AttachWiden {
    type Reparam = Widen;

    fn reparameterize<const D: usize>(
        &mut self,
        _path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<Widen>) {
        // A weight with LoRA terms keeps them (burn re-attaches a parameter's own
        // reparameterization after this one); they widen their base themselves.
        let widen = needs_widening(param.dtype(), &param.device());
        (param, widen.then_some(Widen { widening: true }))
    }
}

/// `module` as its layers should read it for one call: every held half-precision weight widened
/// when read. Costs a walk over the parameters (no tensor is touched); elsewhere (a GPU, or
/// weights already in the compute type) nothing is attached.
pub fn for_compute<M: Module>(module: &M) -> M {
    module.clone().apply_reparameterization(AttachWiden)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    fn held_linear(device: &Device) -> Linear {
        let linear = LinearConfig::new(3, 2).init(device);
        let weight = linear.weight.val().cast(FloatDType::F16);
        let bias = linear.bias.as_ref().unwrap().val().cast(FloatDType::F16);
        Linear {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        }
    }

    #[test]
    fn a_held_f16_layer_computes_in_f32_with_the_widened_weights() {
        let device = Device::flex();
        let linear = held_linear(&device);
        let input = Tensor::<2>::from_floats([[1.0, -2.0, 0.5]], &device);
        let viewed = for_compute(&linear);
        assert_eq!(viewed.weight.val().dtype(), DType::F32);
        // The stored layer is untouched: still half precision.
        assert_eq!(linear.weight.val().dtype(), DType::F16);
        let expected = input
            .clone()
            .matmul(linear.weight.val().cast(FloatDType::F32))
            + linear
                .bias
                .as_ref()
                .unwrap()
                .val()
                .cast(FloatDType::F32)
                .unsqueeze();
        let got = viewed.forward(input);
        assert_eq!(got.dtype(), DType::F32);
        assert_eq!(
            got.into_data().try_to_vec::<f32>().unwrap(),
            expected.into_data().try_to_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn weights_already_in_the_compute_type_are_left_alone() {
        let device = Device::flex();
        let linear = LinearConfig::new(3, 2).init(&device);
        let viewed = for_compute(&linear);
        assert!(viewed.weight.reparameterization::<Widen>().is_none());
    }
}
