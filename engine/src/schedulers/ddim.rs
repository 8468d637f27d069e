//! `DDIMScheduler` with η = 0 (deterministic), as the Stable Diffusion pipelines run it.

use super::{
    Combination, PredictionType, SchedulerConfig, Step, TimestepSpacing, round_half_even,
    spaced_timesteps,
};

#[derive(Clone, Debug)]
pub struct Ddim {
    pub timesteps: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    /// ᾱ past the last step.
    final_alpha_cumprod: f64,
    /// How far apart the timesteps are, in training steps.
    stride: usize,
    prediction_type: PredictionType,
}

impl Ddim {
    pub fn new(config: &SchedulerConfig, alphas_cumprod: Vec<f64>, steps: usize) -> Self {
        let timesteps = match config.timestep_spacing {
            // DDIM rounds its linspace timesteps to whole training steps.
            TimestepSpacing::Linspace => spaced_timesteps(config, steps)
                .into_iter()
                .map(round_half_even)
                .collect(),
            _ => spaced_timesteps(config, steps),
        };
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Ddim {
            timesteps,
            alphas_cumprod,
            final_alpha_cumprod,
            stride: config.num_train_timesteps / steps,
            prediction_type: config.prediction_type,
        }
    }

    pub fn step(&self, step: usize) -> Step {
        let timestep = self.timesteps[step] as usize;
        let alpha = self.alphas_cumprod[timestep];
        let alpha_prev = timestep
            .checked_sub(self.stride)
            .map_or(self.final_alpha_cumprod, |previous| {
                self.alphas_cumprod[previous]
            });
        let (original, epsilon) = predictions(self.prediction_type, alpha);
        original
            .scale(alpha_prev.sqrt())
            .plus(epsilon.scale((1.0 - alpha_prev).sqrt()))
            .with_noise(0.0)
    }
}

/// The predicted x₀ and ε as combinations of sample and model output.
pub(super) fn predictions(
    prediction_type: PredictionType,
    alpha: f64,
) -> (Combination, Combination) {
    let (a, b) = (alpha.sqrt(), (1.0 - alpha).sqrt());
    match prediction_type {
        PredictionType::Epsilon => (
            Combination {
                sample: 1.0 / a,
                model_output: -b / a,
            },
            Combination {
                sample: 0.0,
                model_output: 1.0,
            },
        ),
        PredictionType::VPrediction => (
            Combination {
                sample: a,
                model_output: -b,
            },
            Combination {
                sample: b,
                model_output: a,
            },
        ),
    }
}
