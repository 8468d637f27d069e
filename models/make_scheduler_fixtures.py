"""Golden trajectories of diffusers' schedulers (issue 4), tested the diffusers way: a fixed sample,
a stand-in model, every step recorded. CI never runs this; it reads fixtures/scheduler-golden.json.

    models/.venv/bin/python models/make_scheduler_fixtures.py
"""

import json
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler

OUT = Path(__file__).parent / "fixtures" / "scheduler-golden.json"
SD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
SHAPE = (1, 4, 4, 4)

CASES = [
    ("euler-ancestral", EulerAncestralDiscreteScheduler, dict(SD, timestep_spacing="trailing", steps_offset=1), 1, "epsilon"),
    ("euler-ancestral", EulerAncestralDiscreteScheduler, dict(SD, timestep_spacing="trailing", steps_offset=1), 4, "epsilon"),
    ("euler-ancestral", EulerAncestralDiscreteScheduler, dict(SD, timestep_spacing="leading", steps_offset=1), 3, "v_prediction"),
    ("euler", EulerDiscreteScheduler, dict(SD, timestep_spacing="trailing", steps_offset=1), 2, "epsilon"),
    ("euler", EulerDiscreteScheduler, dict(SD, timestep_spacing="leading", steps_offset=1), 4, "epsilon"),
    ("euler", EulerDiscreteScheduler, dict(SD, timestep_spacing="linspace"), 5, "v_prediction"),
    ("ddim", DDIMScheduler, dict(SD, timestep_spacing="leading", steps_offset=1, clip_sample=False, set_alpha_to_one=False), 4, "epsilon"),
    ("ddim", DDIMScheduler, dict(SD, timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=True), 3, "v_prediction"),
    ("lcm", LCMScheduler, dict(SD, timestep_spacing="leading", steps_offset=1, original_inference_steps=50, clip_sample=False, set_alpha_to_one=True), 4, "epsilon"),
    ("lcm", LCMScheduler, dict(SD, timestep_spacing="trailing", original_inference_steps=50, clip_sample=False, set_alpha_to_one=True), 1, "epsilon"),
]


def stand_in_model(sample, t):
    """A deterministic function of the input and timestep, standing in for the UNet."""
    return 0.3 * sample + 0.001 * float(t) - 0.2


def flat(tensor):
    return [float(x) for x in tensor.flatten()]


def run_case(name, cls, config, steps, prediction_type):
    scheduler = cls(**config, prediction_type=prediction_type)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(SHAPE, generator=generator) * scheduler.init_noise_sigma
    start = sample.clone()
    # The noise that step() draws: same generator seed, same shapes, same order.
    step_generator = torch.Generator().manual_seed(1)
    noise_generator = torch.Generator().manual_seed(1)
    record = {
        "scheduler": name,
        "config": dict(config, prediction_type=prediction_type),
        "steps": steps,
        "timesteps": [float(t) for t in scheduler.timesteps],
        "init_noise_sigma": float(scheduler.init_noise_sigma),
        "start": flat(start),
        "noise": [],
        "scaled_inputs": [],
        "samples": [],
    }
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(sample, t)
        output = stand_in_model(model_input, t)
        if name in ("euler-ancestral", "lcm"):
            record["noise"].append(flat(torch.randn(SHAPE, generator=noise_generator)))
        kwargs = {"generator": step_generator} if name in ("euler-ancestral", "lcm") else {}
        result = scheduler.step(output, t, sample, **kwargs)
        sample = result.prev_sample
        record["scaled_inputs"].append(flat(model_input))
        record["samples"].append(flat(sample))
    return record


def add_noise_cases():
    scheduler = DDPMScheduler(**SD)
    generator = torch.Generator().manual_seed(2)
    original = torch.randn(SHAPE, generator=generator)
    noise = torch.randn(SHAPE, generator=generator)
    timesteps = [0, 1, 250, 500, 999]
    return {
        "original": flat(original),
        "noise": flat(noise),
        "timesteps": timesteps,
        "noisy": [flat(scheduler.add_noise(original, noise, torch.tensor([t]))) for t in timesteps],
        "velocity": [flat(scheduler.get_velocity(original, noise, torch.tensor([t]))) for t in timesteps],
    }


def main():
    golden = {"shape": list(SHAPE), "cases": [run_case(*case) for case in CASES], "add_noise": add_noise_cases()}
    OUT.write_text(json.dumps(golden))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
