//! Samplers tested the diffusers way: a fixed sample, a stand-in model, every step compared with
//! the reference (golden: models/make_scheduler_fixtures.py), with the reference's own noise.

use engine::schedulers::{
    Scheduler, SchedulerConfig, SchedulerKind, add_noise_coefficients, alphas_cumprod,
    velocity_coefficients,
};
use serde_json::Value;

fn golden() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/fixtures/scheduler-golden.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn relative_l2(actual: &[f32], expected: &[f32]) -> f64 {
    let difference: f64 = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let norm: f64 = expected.iter().map(|b| f64::from(*b).powi(2)).sum();
    (difference / norm).sqrt()
}

/// The reference's stand-in for the UNet.
fn stand_in_model(input: &[f32], timestep: f64) -> Vec<f32> {
    input
        .iter()
        .map(|x| (0.3 * f64::from(*x) + 0.001 * timestep - 0.2) as f32)
        .collect()
}

#[test]
fn samplers_match_diffusers_step_by_step() {
    let golden = golden();
    for case in golden["cases"].as_array().unwrap() {
        let label = format!(
            "{} {} {} steps",
            case["scheduler"], case["config"]["timestep_spacing"], case["steps"]
        );
        let config: SchedulerConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let kind = SchedulerKind::from_cli_name(case["scheduler"].as_str().unwrap()).unwrap();
        let scheduler =
            Scheduler::new(kind, &config, case["steps"].as_u64().unwrap() as usize).unwrap();
        let expected_timesteps: Vec<f64> = floats(&case["timesteps"])
            .into_iter()
            .map(f64::from)
            .collect();
        assert_eq!(
            scheduler.timesteps(),
            expected_timesteps.as_slice(),
            "{label}: timesteps"
        );
        let sigma = case["init_noise_sigma"].as_f64().unwrap();
        assert!(
            (scheduler.init_noise_sigma() - sigma).abs() <= 1e-5 * sigma,
            "{label}: init_noise_sigma"
        );

        let mut sample = floats(&case["start"]);
        for (index, &timestep) in scheduler.timesteps().iter().enumerate() {
            let scale = scheduler.input_scale(index) as f32;
            let input: Vec<f32> = sample.iter().map(|x| x * scale).collect();
            let error = relative_l2(&input, &floats(&case["scaled_inputs"][index]));
            assert!(
                error <= 1e-5,
                "{label}: step {index} model input, relative error {error:e}"
            );
            let output = stand_in_model(&input, timestep);
            let noise = case["noise"].get(index).map(floats);
            let step = scheduler.step(index);
            sample = step.apply(&sample, &output, noise.as_deref());
            let error = relative_l2(&sample, &floats(&case["samples"][index]));
            assert!(
                error <= 1e-5,
                "{label}: step {index} sample, relative error {error:e}"
            );
        }
    }
}

#[test]
fn only_the_ancestral_and_consistency_samplers_draw_noise() {
    let config: SchedulerConfig =
        serde_json::from_value(golden()["cases"][0]["config"].clone()).unwrap();
    let draws = |kind| {
        let scheduler = Scheduler::new(kind, &config, 4).unwrap();
        (0..4)
            .map(|step| scheduler.step(step).needs_noise())
            .collect::<Vec<_>>()
    };
    assert_eq!(draws(SchedulerKind::Euler), [false; 4]);
    assert_eq!(draws(SchedulerKind::Ddim), [false; 4]);
    // The last ancestral step goes to sigma 0 and the last LCM step returns the denoised sample.
    assert_eq!(
        draws(SchedulerKind::EulerAncestral),
        [true, true, true, false]
    );
    assert_eq!(draws(SchedulerKind::Lcm), [true, true, true, false]);
}

#[test]
fn add_noise_and_velocity_match_diffusers() {
    let golden = golden();
    let cases = &golden["add_noise"];
    let config: SchedulerConfig =
        serde_json::from_value(serde_json::json!({"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}))
            .unwrap();
    let alphas = alphas_cumprod(&config).unwrap();
    let (original, noise) = (floats(&cases["original"]), floats(&cases["noise"]));
    for (index, timestep) in cases["timesteps"].as_array().unwrap().iter().enumerate() {
        let timestep = timestep.as_u64().unwrap() as usize;
        for (coefficients, key) in [
            (add_noise_coefficients(&alphas, timestep), "noisy"),
            (velocity_coefficients(&alphas, timestep), "velocity"),
        ] {
            let actual: Vec<f32> = original
                .iter()
                .zip(&noise)
                .map(|(x, e)| {
                    (coefficients.0 * f64::from(*x) + coefficients.1 * f64::from(*e)) as f32
                })
                .collect();
            let error = relative_l2(&actual, &floats(&cases[key][index]));
            assert!(
                error <= 1e-5,
                "{key} at t={timestep}: relative error {error:e}"
            );
        }
    }
}

#[test]
fn unsupported_options_and_names_are_refused_with_a_reason() {
    let config: SchedulerConfig =
        serde_json::from_value(serde_json::json!({"clip_sample": true})).unwrap();
    let message = Scheduler::new(SchedulerKind::Ddim, &config, 4)
        .unwrap_err()
        .to_string();
    assert!(message.contains("clip_sample"), "{message}");
    assert!(
        SchedulerKind::from_cli_name("dpm++")
            .unwrap_err()
            .to_string()
            .contains("euler-ancestral")
    );
    let lcm: SchedulerConfig =
        serde_json::from_value(serde_json::json!({"original_inference_steps": 50})).unwrap();
    assert!(
        Scheduler::new(SchedulerKind::Lcm, &lcm, 51)
            .unwrap_err()
            .to_string()
            .contains("at most 50")
    );
}
