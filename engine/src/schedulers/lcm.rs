//! `LCMScheduler`: consistency-model steps on a subset of the distillation schedule.

use super::ddim::predictions;
use super::{Combination, PredictionType, SchedulerConfig, Step};
use crate::error::{EngineError, Result};

/// The data standard deviation of the boundary-condition scalings.
const SIGMA_DATA: f64 = 0.5;

#[derive(Clone, Debug)]
pub struct Lcm {
    pub timesteps: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    timestep_scaling: f64,
    prediction_type: PredictionType,
}

impl Lcm {
    pub fn new(config: &SchedulerConfig, alphas_cumprod: Vec<f64>, steps: usize) -> Result<Self> {
        let original = config.original_inference_steps;
        if steps > original {
            return Err(EngineError::Usage(format!(
                "an LCM model takes at most {original} steps (original_inference_steps), not {steps}"
            )));
        }
        let stride = config.num_train_timesteps / original;
        let schedule: Vec<usize> = (1..=original).rev().map(|i| i * stride - 1).collect();
        let timesteps = (0..steps)
            .map(|i| schedule[i * schedule.len() / steps] as f64)
            .collect();
        Ok(Lcm {
            timesteps,
            alphas_cumprod,
            timestep_scaling: config.timestep_scaling,
            prediction_type: config.prediction_type,
        })
    }

    pub fn step(&self, step: usize) -> Step {
        let timestep = self.timesteps[step];
        let alpha = self.alphas_cumprod[timestep as usize];
        let scaled = timestep * self.timestep_scaling;
        let c_skip = SIGMA_DATA * SIGMA_DATA / (scaled * scaled + SIGMA_DATA * SIGMA_DATA);
        let c_out = scaled / (scaled * scaled + SIGMA_DATA * SIGMA_DATA).sqrt();
        let (original, _) = predictions(self.prediction_type, alpha);
        let denoised = original
            .scale(c_out)
            .plus(Combination::SAMPLE.scale(c_skip));
        match self.timesteps.get(step + 1) {
            Some(&next) => {
                let alpha_prev = self.alphas_cumprod[next as usize];
                denoised
                    .scale(alpha_prev.sqrt())
                    .with_noise((1.0 - alpha_prev).sqrt())
            }
            None => denoised.with_noise(0.0),
        }
    }
}
