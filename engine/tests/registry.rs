//! Every pipeline in `models/registry.json` runs with its scheduler as published (the registry
//! records each model's `scheduler_config.json`; the app checks the real file again before it
//! downloads any weights) at the registry's default steps and size.

use engine::loaders::files::Checked;
use engine::pipelines::stable_diffusion::GenerationRequest;
use engine::schedulers::{Scheduler, SchedulerConfig};
use serde_json::Value;

fn registry() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/registry.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn every_registry_pipeline_runs_with_its_own_scheduler_at_its_default_steps() {
    let registry = registry();
    let pipelines: Vec<&Value> = registry["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|model| model["role"] == "pipeline")
        .collect();
    assert!(pipelines.len() >= 3, "{} pipelines", pipelines.len());
    for model in pipelines {
        let repo = model["repo"].as_str().unwrap();
        let config: SchedulerConfig = serde_json::from_value(model["scheduler"].clone())
            .unwrap_or_else(|error| panic!("{repo}: {error}"));
        config
            .check()
            .unwrap_or_else(|error| panic!("{repo}: {error}"));
        let kind = config
            .supported_kind()
            .unwrap_or_else(|error| panic!("{repo}: {error}"));
        let defaults = &model["defaults"];
        let steps = defaults["steps"].as_u64().unwrap() as usize;
        let scheduler = Scheduler::new(kind, &config, steps).unwrap();
        let timesteps = scheduler.timesteps();
        assert_eq!(timesteps.len(), steps, "{repo}");
        // A few-step model starts from (nearly) pure noise; a schedule that starts low (a
        // one-step "leading" spacing gives timestep 1) draws grey noise.
        assert!(
            timesteps[0] >= 900.0,
            "{repo} starts at timestep {}",
            timesteps[0]
        );
        let request = GenerationRequest {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps,
            guidance: defaults["guidance"].as_f64().unwrap(),
            width: defaults["width"].as_u64().unwrap() as usize,
            height: defaults["height"].as_u64().unwrap() as usize,
            seed: 0,
            scheduler: None,
            noise: None,
        };
        request
            .check()
            .unwrap_or_else(|error| panic!("{repo}: {error}"));
    }
}

#[test]
fn a_one_step_model_with_leading_spacing_would_be_caught() {
    // The check above is not vacuous: the same scheduler with diffusers' default spacing starts
    // at timestep 1 for one step.
    let config: SchedulerConfig = serde_json::from_value(serde_json::json!({
        "_class_name": "EulerDiscreteScheduler", "timestep_spacing": "leading", "steps_offset": 1,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012
    }))
    .unwrap();
    let scheduler = Scheduler::new(config.supported_kind().unwrap(), &config, 1).unwrap();
    assert!(scheduler.timesteps()[0] < 900.0);
}
