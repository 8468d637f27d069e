//! Every component's configuration, parsed and checked as the engine does before building
//! anything; a scheduler that passes is built for a few step counts.
#![no_main]

use engine::loaders::files::{InMemory, ModelFiles, block_on};
use engine::models::autoencoder_tiny::AutoencoderTinyConfig;
use engine::models::clip::ClipTextConfig;
use engine::models::llama::LlamaConfig;
use engine::models::unet_2d::UNet2DConditionConfig;
use engine::models::vae::AutoencoderKLConfig;
use engine::schedulers::{Scheduler, SchedulerConfig, SchedulerKind};
use libfuzzer_sys::fuzz_target;

const PATH: &str = "config.json";

fuzz_target!(|data: &[u8]| {
    let files = InMemory([(PATH.to_owned(), data.to_vec())].into_iter().collect());
    let _ = block_on(files.config::<UNet2DConditionConfig>(PATH, "a UNet config"));
    let _ = block_on(files.config::<AutoencoderKLConfig>(PATH, "a VAE config"));
    let _ = block_on(files.config::<AutoencoderTinyConfig>(PATH, "a TAESD config"));
    let _ = block_on(files.config::<ClipTextConfig>(PATH, "a text encoder config"));
    let _ = block_on(files.config::<LlamaConfig>(PATH, "a language model config"));
    if let Ok(config) = block_on(files.config::<SchedulerConfig>(PATH, "a scheduler config")) {
        let kinds = [
            SchedulerKind::Euler,
            SchedulerKind::EulerAncestral,
            SchedulerKind::Ddim,
            SchedulerKind::Lcm,
        ];
        for kind in kinds {
            for steps in [1, 4, 50] {
                if let Ok(scheduler) = Scheduler::new(kind, &config, steps) {
                    for step in 0..scheduler.timesteps().len() {
                        let _ = scheduler.step(step);
                        let _ = scheduler.input_scale(step);
                    }
                }
            }
        }
    }
});
