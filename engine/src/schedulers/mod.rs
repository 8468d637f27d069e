//! Samplers as plain math, configured by `scheduler/scheduler_config.json` (diffusers'
//! `schedulers/`): schedules are `Vec<f64>`, no model tensors live here.
//!
//! Every supported step is linear in its inputs, so a step is returned as three coefficients —
//! `next = a·sample + b·model_output + c·noise` — and the pipeline applies them to whatever tensors
//! it holds. That keeps the samplers backend-free and exactly testable.

mod ddim;
mod euler;
mod lcm;

use serde::Deserialize;

pub use ddim::Ddim;
pub use euler::Euler;
pub use lcm::Lcm;

use crate::error::{EngineError, Result};

/// `scheduler_config.json`, with diffusers' defaults for the fields a file may leave out.
#[derive(Clone, Debug, Deserialize)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name", default)]
    pub class_name: String,
    #[serde(default = "defaults::num_train_timesteps")]
    pub num_train_timesteps: usize,
    #[serde(default = "defaults::beta_start")]
    pub beta_start: f64,
    #[serde(default = "defaults::beta_end")]
    pub beta_end: f64,
    #[serde(default = "defaults::beta_schedule")]
    pub beta_schedule: String,
    #[serde(default)]
    pub prediction_type: PredictionType,
    #[serde(default)]
    pub timestep_spacing: TimestepSpacing,
    #[serde(default)]
    pub steps_offset: usize,
    /// DDIM/LCM: the "previous" alpha product past the last step is 1 (or ᾱ₀ when false).
    #[serde(default = "defaults::set_alpha_to_one")]
    pub set_alpha_to_one: bool,
    /// LCM: the distillation schedule the inference timesteps are drawn from.
    #[serde(default = "defaults::original_inference_steps")]
    pub original_inference_steps: usize,
    /// LCM: scales the timestep in the boundary-condition scalings.
    #[serde(default = "defaults::timestep_scaling")]
    pub timestep_scaling: f64,
    /// DDIM/LCM clip the predicted sample to [-1, 1] when true; SD configs set it false.
    #[serde(default)]
    pub clip_sample: bool,
    #[serde(default)]
    pub thresholding: bool,
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
    #[serde(default)]
    pub use_karras_sigmas: bool,
}

impl crate::loaders::files::Checked for SchedulerConfig {
    fn check(&self) -> std::result::Result<(), String> {
        use crate::loaders::limits::{MAX_TRAIN_TIMESTEPS, count, positive};
        let timesteps = self.num_train_timesteps;
        count("num_train_timesteps", timesteps, 1, MAX_TRAIN_TIMESTEPS)?;
        count("steps_offset", self.steps_offset, 0, timesteps - 1)?;
        count(
            "original_inference_steps",
            self.original_inference_steps,
            1,
            timesteps,
        )?;
        positive("timestep_scaling", self.timestep_scaling)?;
        let betas = (self.beta_start, self.beta_end);
        if !(betas.0.is_finite() && betas.1.is_finite() && 0.0 < betas.0)
            || betas.0 > betas.1
            || betas.1 >= 1.0
        {
            return Err(format!(
                "beta_start {} and beta_end {} must satisfy 0 < beta_start ≤ beta_end < 1",
                betas.0, betas.1
            ));
        }
        Ok(())
    }
}

impl SchedulerConfig {
    /// The sampler this config names, when the engine has it; else a message that says so
    /// (with the classes it has), before anything is downloaded or loaded.
    pub fn supported_kind(&self) -> std::result::Result<SchedulerKind, String> {
        SchedulerKind::from_class_name(&self.class_name).ok_or_else(|| {
            format!(
                "the scheduler `{}` is not one this app has (EulerDiscreteScheduler, \
                 EulerAncestralDiscreteScheduler, DDIMScheduler or LCMScheduler)",
                self.class_name
            )
        })
    }
}

mod defaults {
    pub fn num_train_timesteps() -> usize {
        1000
    }
    pub fn beta_start() -> f64 {
        0.0001
    }
    pub fn beta_end() -> f64 {
        0.02
    }
    pub fn beta_schedule() -> String {
        "linear".into()
    }
    pub fn set_alpha_to_one() -> bool {
        true
    }
    pub fn original_inference_steps() -> usize {
        50
    }
    pub fn timestep_scaling() -> f64 {
        10.0
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The model predicts the noise.
    #[default]
    Epsilon,
    /// The model predicts the velocity `√ᾱ·ε − √(1−ᾱ)·x₀` (SD 2.x 768).
    VPrediction,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    Linspace,
    #[default]
    Leading,
    /// Ends exactly at the last training timestep: what few-step models (SD-Turbo) need.
    Trailing,
}

/// Which sampler to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    EulerAncestral,
    Euler,
    Ddim,
    Lcm,
}

impl SchedulerKind {
    /// The CLI name (`euler-ancestral`, `euler`, `ddim`, `lcm`).
    pub fn from_cli_name(name: &str) -> Result<Self> {
        match name {
            "euler-ancestral" => Ok(SchedulerKind::EulerAncestral),
            "euler" => Ok(SchedulerKind::Euler),
            "ddim" => Ok(SchedulerKind::Ddim),
            "lcm" => Ok(SchedulerKind::Lcm),
            other => Err(EngineError::Usage(format!(
                "unknown scheduler `{other}`: choose euler-ancestral, euler, ddim or lcm"
            ))),
        }
    }

    /// The diffusers class a folder names in `_class_name`.
    pub fn from_class_name(class_name: &str) -> Option<Self> {
        match class_name {
            "EulerAncestralDiscreteScheduler" => Some(SchedulerKind::EulerAncestral),
            "EulerDiscreteScheduler" => Some(SchedulerKind::Euler),
            "DDIMScheduler" => Some(SchedulerKind::Ddim),
            "LCMScheduler" => Some(SchedulerKind::Lcm),
            _ => None,
        }
    }
}

/// `next = sample·a + model_output·b + noise·c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub sample: f64,
    pub model_output: f64,
    pub noise: f64,
}

impl Step {
    /// Applies the step to plain values (tests, small tensors already on the host).
    pub fn apply(&self, sample: &[f32], model_output: &[f32], noise: Option<&[f32]>) -> Vec<f32> {
        sample
            .iter()
            .zip(model_output)
            .enumerate()
            .map(|(index, (x, e))| {
                let z = noise.map_or(0.0, |noise| f64::from(noise[index]));
                (self.sample * f64::from(*x) + self.model_output * f64::from(*e) + self.noise * z)
                    as f32
            })
            .collect()
    }

    pub fn needs_noise(&self) -> bool {
        self.noise != 0.0
    }
}

/// A linear combination `s·sample + o·model_output`, to write the samplers' formulas plainly.
#[derive(Clone, Copy, Debug)]
struct Combination {
    sample: f64,
    model_output: f64,
}

impl Combination {
    const SAMPLE: Combination = Combination {
        sample: 1.0,
        model_output: 0.0,
    };

    fn scale(self, factor: f64) -> Self {
        Combination {
            sample: self.sample * factor,
            model_output: self.model_output * factor,
        }
    }

    fn plus(self, other: Combination) -> Self {
        Combination {
            sample: self.sample + other.sample,
            model_output: self.model_output + other.model_output,
        }
    }

    fn with_noise(self, noise: f64) -> Step {
        Step {
            sample: self.sample,
            model_output: self.model_output,
            noise,
        }
    }
}

/// The running sampler, whatever its kind.
#[derive(Clone, Debug)]
pub enum Scheduler {
    Euler(Euler),
    Ddim(Ddim),
    Lcm(Lcm),
}

impl Scheduler {
    /// Builds `kind` from `config` for `steps` inference steps.
    pub fn new(kind: SchedulerKind, config: &SchedulerConfig, steps: usize) -> Result<Self> {
        let unsupported = [
            (
                config.clip_sample && matches!(kind, SchedulerKind::Ddim | SchedulerKind::Lcm),
                "clip_sample",
            ),
            (config.thresholding, "thresholding"),
            (config.rescale_betas_zero_snr, "rescale_betas_zero_snr"),
            (config.use_karras_sigmas, "use_karras_sigmas"),
        ];
        if let Some((_, option)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(EngineError::Usage(format!(
                "the scheduler option `{option}` is not supported"
            )));
        }
        if steps == 0 {
            return Err(EngineError::Usage(
                "at least one inference step is needed".into(),
            ));
        }
        let most = config
            .num_train_timesteps
            .min(crate::loaders::limits::MAX_STEPS);
        if steps > most {
            return Err(EngineError::Usage(format!(
                "{steps} inference steps are more than this model can take ({most} at most)"
            )));
        }
        let alphas_cumprod = alphas_cumprod(config)?;
        Ok(match kind {
            SchedulerKind::EulerAncestral => {
                Scheduler::Euler(Euler::new(config, &alphas_cumprod, steps, true))
            }
            SchedulerKind::Euler => {
                Scheduler::Euler(Euler::new(config, &alphas_cumprod, steps, false))
            }
            SchedulerKind::Ddim => Scheduler::Ddim(Ddim::new(config, alphas_cumprod, steps)),
            SchedulerKind::Lcm => Scheduler::Lcm(Lcm::new(config, alphas_cumprod, steps)?),
        })
    }

    /// The model's timestep for each step, in order.
    pub fn timesteps(&self) -> &[f64] {
        match self {
            Scheduler::Euler(s) => &s.timesteps,
            Scheduler::Ddim(s) => &s.timesteps,
            Scheduler::Lcm(s) => &s.timesteps,
        }
    }

    /// The standard deviation initial noise is scaled to (diffusers' `init_noise_sigma`).
    pub fn init_noise_sigma(&self) -> f64 {
        match self {
            Scheduler::Euler(s) => s.init_noise_sigma(),
            Scheduler::Ddim(_) | Scheduler::Lcm(_) => 1.0,
        }
    }

    /// What the model input is multiplied by at `step` (diffusers' `scale_model_input`).
    pub fn input_scale(&self, step: usize) -> f64 {
        match self {
            Scheduler::Euler(s) => s.input_scale(step),
            Scheduler::Ddim(_) | Scheduler::Lcm(_) => 1.0,
        }
    }

    /// The coefficients of step number `step` (0-based).
    pub fn step(&self, step: usize) -> Step {
        match self {
            Scheduler::Euler(s) => s.step(step),
            Scheduler::Ddim(s) => s.step(step),
            Scheduler::Lcm(s) => s.step(step),
        }
    }
}

/// ᾱ_t for every training timestep, from the beta schedule.
pub fn alphas_cumprod(config: &SchedulerConfig) -> Result<Vec<f64>> {
    let n = config.num_train_timesteps;
    let betas: Vec<f64> = match config.beta_schedule.as_str() {
        "linear" => linspace(config.beta_start, config.beta_end, n),
        "scaled_linear" => linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), n)
            .into_iter()
            .map(|beta| beta * beta)
            .collect(),
        other => {
            return Err(EngineError::Usage(format!(
                "the beta schedule `{other}` is not supported (linear or scaled_linear)"
            )));
        }
    };
    Ok(betas
        .iter()
        .scan(1.0, |product, beta| {
            *product *= 1.0 - beta;
            Some(*product)
        })
        .collect())
}

/// diffusers' `add_noise` for training: `√ᾱ_t·x₀ + √(1−ᾱ_t)·ε`, as (x₀, ε) coefficients.
pub fn add_noise_coefficients(alphas_cumprod: &[f64], timestep: usize) -> (f64, f64) {
    let alpha = alphas_cumprod[timestep];
    (alpha.sqrt(), (1.0 - alpha).sqrt())
}

/// The v-prediction target `√ᾱ_t·ε − √(1−ᾱ_t)·x₀`, as (x₀, ε) coefficients.
pub fn velocity_coefficients(alphas_cumprod: &[f64], timestep: usize) -> (f64, f64) {
    let alpha = alphas_cumprod[timestep];
    (-(1.0 - alpha).sqrt(), alpha.sqrt())
}

fn linspace(start: f64, end: f64, count: usize) -> Vec<f64> {
    if count == 1 {
        return vec![start];
    }
    (0..count)
        .map(|i| start + (end - start) * i as f64 / (count - 1) as f64)
        .collect()
}

/// The inference timesteps of the sigma-based and DDIM-family samplers, by spacing.
fn spaced_timesteps(config: &SchedulerConfig, steps: usize) -> Vec<f64> {
    let n = config.num_train_timesteps;
    match config.timestep_spacing {
        TimestepSpacing::Linspace => linspace(0.0, (n - 1) as f64, steps)
            .into_iter()
            .rev()
            .collect(),
        TimestepSpacing::Leading => {
            let ratio = n / steps;
            (0..steps)
                .rev()
                .map(|i| (i * ratio + config.steps_offset) as f64)
                .collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = n as f64 / steps as f64;
            (0..steps)
                .map(|i| round_half_even(n as f64 - i as f64 * ratio) - 1.0)
                .collect()
        }
    }
}

/// numpy's `round`: halves go to the even neighbour.
fn round_half_even(value: f64) -> f64 {
    let rounded = value.round();
    if (value - value.trunc()).abs() == 0.5 && rounded % 2.0 != 0.0 {
        rounded - value.signum()
    } else {
        rounded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_rounding_sends_halves_to_even() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(2.6), 3.0);
    }
}
