//! diffusers' `embeddings.rs`: sinusoidal timestep features and the `TimestepEmbedding` MLP.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor, TensorData};

/// `get_timestep_embedding`: `[batch]` timesteps → `[batch, dim]` sin/cos features.
pub fn timestep_features(
    timesteps: &[f64],
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    device: &Device,
) -> Tensor<2> {
    let half = dim / 2;
    let mut values = Vec::with_capacity(timesteps.len() * dim);
    for &timestep in timesteps {
        // Single precision like the reference: the frequencies and products are f32 there.
        let angles: Vec<f32> = (0..half)
            .map(|i| {
                let exponent =
                    (-(10000f32.ln()) * i as f32 / (half as f32 - freq_shift as f32)).exp();
                timestep as f32 * exponent
            })
            .collect();
        let sines = angles.iter().map(|angle| angle.sin());
        let cosines = angles.iter().map(|angle| angle.cos());
        if flip_sin_to_cos {
            values.extend(cosines.chain(sines));
        } else {
            values.extend(sines.chain(cosines));
        }
        if dim % 2 == 1 {
            values.push(0.0);
        }
    }
    Tensor::from_data(TensorData::new(values, [timesteps.len(), dim]), device)
}

#[derive(Module, Debug)]
pub struct TimestepEmbedding {
    pub linear_1: Linear,
    pub linear_2: Linear,
    /// LCM's guidance embedding is projected and added to the timestep features.
    pub cond_proj: Option<Linear>,
}

impl TimestepEmbedding {
    pub fn new(
        device: &Device,
        inputs: usize,
        outputs: usize,
        condition_dim: Option<usize>,
    ) -> Self {
        TimestepEmbedding {
            linear_1: LinearConfig::new(inputs, outputs).init(device),
            linear_2: LinearConfig::new(outputs, outputs).init(device),
            cond_proj: condition_dim
                .map(|dim| LinearConfig::new(dim, inputs).with_bias(false).init(device)),
        }
    }

    pub fn forward(&self, features: Tensor<2>, condition: Option<Tensor<2>>) -> Tensor<2> {
        let features = match (&self.cond_proj, condition) {
            (Some(projection), Some(condition)) => features + projection.forward(condition),
            _ => features,
        };
        self.linear_2.forward(silu(self.linear_1.forward(features)))
    }
}
