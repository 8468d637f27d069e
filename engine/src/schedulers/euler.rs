//! `EulerDiscreteScheduler` and `EulerAncestralDiscreteScheduler`: Euler steps on the sigma
//! schedule; the ancestral one adds fresh noise at every step.

use super::{
    Combination, PredictionType, SchedulerConfig, Step, TimestepSpacing, spaced_timesteps,
};

#[derive(Clone, Debug)]
pub struct Euler {
    pub timesteps: Vec<f64>,
    /// One sigma per step, then 0.
    pub sigmas: Vec<f64>,
    ancestral: bool,
    prediction_type: PredictionType,
    spacing: TimestepSpacing,
}

impl Euler {
    pub fn new(
        config: &SchedulerConfig,
        alphas_cumprod: &[f64],
        steps: usize,
        ancestral: bool,
    ) -> Self {
        let table: Vec<f64> = alphas_cumprod
            .iter()
            .map(|alpha| ((1.0 - alpha) / alpha).sqrt())
            .collect();
        let timesteps = spaced_timesteps(config, steps);
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interpolate(&table, t)).collect();
        sigmas.push(0.0);
        Euler {
            timesteps,
            sigmas,
            ancestral,
            prediction_type: config.prediction_type,
            spacing: config.timestep_spacing,
        }
    }

    pub fn init_noise_sigma(&self) -> f64 {
        let max = self.sigmas.iter().copied().fold(0.0, f64::max);
        match self.spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        }
    }

    pub fn input_scale(&self, step: usize) -> f64 {
        1.0 / (self.sigmas[step].powi(2) + 1.0).sqrt()
    }

    pub fn step(&self, step: usize) -> Step {
        let (sigma, next) = (self.sigmas[step], self.sigmas[step + 1]);
        let predicted_original = match self.prediction_type {
            PredictionType::Epsilon => Combination::SAMPLE.plus(Combination {
                sample: 0.0,
                model_output: -sigma,
            }),
            PredictionType::VPrediction => Combination {
                sample: 1.0 / (sigma * sigma + 1.0),
                model_output: -sigma / (sigma * sigma + 1.0).sqrt(),
            },
        };
        let derivative = Combination::SAMPLE
            .plus(predicted_original.scale(-1.0))
            .scale(1.0 / sigma);
        let (target, noise) = if self.ancestral {
            let up = (next * next * (sigma * sigma - next * next) / (sigma * sigma)).sqrt();
            ((next * next - up * up).sqrt(), up)
        } else {
            (next, 0.0)
        };
        Combination::SAMPLE
            .plus(derivative.scale(target - sigma))
            .with_noise(noise)
    }
}

/// numpy's `interp` over integer positions 0, 1, …
fn interpolate(table: &[f64], position: f64) -> f64 {
    let below = (position.floor() as usize).min(table.len() - 1);
    let above = (below + 1).min(table.len() - 1);
    let fraction = position - below as f64;
    table[below] + (table[above] - table[below]) * fraction
}
