"""Makes the image-side test fixtures and golden outputs (issue 4): tiny random UNets and VAEs in
diffusers folder layout, next to the text side of make_text_fixtures.py (run that first).

    models/.venv/bin/python models/make_image_fixtures.py

- tiny-sd2: linear projection, per-block head counts, AutoencoderKL (SD 2 / Turbo-like);
- tiny-sd1: conv projection, time_cond_proj_dim (LCM-like), three blocks;
- tiny-sdxs: no mid block.
Each gets unet/ + vae/ + scheduler/ and golden UNet and VAE outputs in image-golden.safetensors.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDIMScheduler,
    EulerAncestralDiscreteScheduler,
    LCMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from safetensors.torch import save_file

FIXTURES = Path(__file__).parent / "fixtures"

UNETS = {
    "tiny-sd2": dict(
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=4,
        cross_attention_dim=16,
    ),
    "tiny-sd1": dict(
        block_out_channels=(8, 8, 16),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=2,
        attention_head_dim=2,
        use_linear_projection=False,
        norm_num_groups=4,
        cross_attention_dim=16,
        time_cond_proj_dim=8,
        flip_sin_to_cos=True,
        freq_shift=0,
    ),
    "tiny-sdxs": dict(
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1,
        attention_head_dim=2,
        use_linear_projection=True,
        norm_num_groups=4,
        cross_attention_dim=16,
        mid_block_type=None,
    ),
}

VAE = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(4, 8, 8, 8),
    latent_channels=4,
    norm_num_groups=4,
    layers_per_block=1,
    sample_size=32,
    scaling_factor=0.18215,
)


# TAESD layout (AutoencoderTiny), narrower: the SD1/LCM-like fixture decodes with it.
TAESD = dict(
    encoder_block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 8, 8, 8),
    num_encoder_blocks=(1, 2, 1, 1),
    num_decoder_blocks=(1, 1, 2, 1),
    latent_channels=4,
)


def perturb_norms(model):
    """Random init leaves norms at 1/0; perturb them so the tests see those parameters."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)


SD = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

# Each fixture's own sampler, and the end-to-end run compared with diffusers' pipeline.
SCHEDULERS = {
    "tiny-sd2": EulerAncestralDiscreteScheduler(**SD, timestep_spacing="trailing", steps_offset=1),
    "tiny-sd1": LCMScheduler(**SD, timestep_spacing="leading", steps_offset=1, original_inference_steps=50, clip_sample=False),
    "tiny-sdxs": DDIMScheduler(**SD, timestep_spacing="leading", steps_offset=1, clip_sample=False, set_alpha_to_one=False),
}
PIPELINE_RUNS = {
    # SD-Turbo style: one step, no guidance.
    "tiny-sd2": dict(prompt="a photo of a cat", negative_prompt=None, num_inference_steps=1, guidance_scale=0.0),
    # LCM style: the guidance scale goes in as an embedding; one step draws no noise.
    "tiny-sd1": dict(prompt="a watercolor toddler", negative_prompt=None, num_inference_steps=1, guidance_scale=8.0),
    # DDIM with classifier-free guidance and a negative prompt.
    "tiny-sdxs": dict(prompt="a child at the zoo", negative_prompt="blurry, dark", num_inference_steps=3, guidance_scale=7.5),
}
SIZE = 32


def write_pipeline_files(name):
    root = FIXTURES / name
    if not (root / "text_encoder").exists():
        # The SDXS-like fixture borrows the SD2-like text side (identical files, stored once by git).
        for part in ["tokenizer", "text_encoder"]:
            shutil.copytree(FIXTURES / "tiny-sd2" / part, root / part, ignore=shutil.ignore_patterns("*.fp16.*"))
    SCHEDULERS[name].save_config(root / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", type(SCHEDULERS[name]).__name__],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderTiny" if name == "tiny-sd1" else "AutoencoderKL"],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2))


def run_pipeline(name, golden):
    pipe = StableDiffusionPipeline.from_pretrained(
        FIXTURES / name, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32
    )
    noise = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(5))
    save_file({"noise": noise}, FIXTURES / f"{name}-noise.safetensors")
    run = PIPELINE_RUNS[name]
    latents = pipe(**run, height=SIZE, width=SIZE, latents=noise.clone(), output_type="latent").images
    image = pipe(**run, height=SIZE, width=SIZE, latents=noise.clone(), output_type="np").images[0]
    golden[f"{name}.pipeline.latents"] = latents
    Image.fromarray((image * 255).round().astype(np.uint8)).save(FIXTURES / f"{name}-golden.png")


def main():
    golden = {}
    for index, (name, config) in enumerate(UNETS.items()):
        torch.manual_seed(100 + index)
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, **config).eval()
        perturb_norms(unet)
        unet.save_pretrained(FIXTURES / name / "unet")
        sample = torch.randn(2, 4, 8, 8)
        context = torch.randn(2, 77, 16)
        timestep = torch.tensor(751.0)
        kwargs = {}
        if config.get("time_cond_proj_dim"):
            kwargs["timestep_cond"] = torch.randn(2, config["time_cond_proj_dim"])
            golden[f"{name}.unet.timestep_cond"] = kwargs["timestep_cond"]
        with torch.no_grad():
            golden[f"{name}.unet.output"] = unet(sample, timestep, encoder_hidden_states=context, **kwargs).sample
        if name == "tiny-sd2":
            # The diffusers fp16 variant beside the f32 weights; its golden output uses the rounded weights.
            half = {k: v.half().contiguous() for k, v in unet.state_dict().items()}
            save_file(half, FIXTURES / name / "unet" / "diffusion_pytorch_model.fp16.safetensors")
            rounded = UNet2DConditionModel.from_config(unet.config).eval()
            rounded.load_state_dict({k: v.float() for k, v in half.items()})
            with torch.no_grad():
                golden[f"{name}.unet.fp16_output"] = rounded(sample, timestep, encoder_hidden_states=context).sample
        golden[f"{name}.unet.sample"] = sample
        golden[f"{name}.unet.context"] = context

        torch.manual_seed(200 + index)
        vae = (AutoencoderTiny(**TAESD) if name == "tiny-sd1" else AutoencoderKL(**VAE)).eval()
        perturb_norms(vae)
        vae.save_pretrained(FIXTURES / name / "vae")
        # The fp16 variant too, so each fixture has the hub's fp16 file layout (the model manager
        # downloads `*.fp16.safetensors`); the engine prefers the f32 file when both are present.
        save_file(
            {key: value.half().contiguous() for key, value in vae.state_dict().items()},
            FIXTURES / name / "vae" / "diffusion_pytorch_model.fp16.safetensors",
        )
        image = torch.rand(1, 3, 32, 32) * 2 - 1
        latents = torch.randn(1, 4, 4, 4)
        with torch.no_grad():
            golden[f"{name}.vae.image"] = image
            encoded = vae.encode(image)
            golden[f"{name}.vae.latent_mean"] = encoded.latents if name == "tiny-sd1" else encoded.latent_dist.mean
            golden[f"{name}.vae.latents"] = latents
            golden[f"{name}.vae.decoded"] = vae.decode(latents).sample
        write_pipeline_files(name)
    for name in UNETS:
        run_pipeline(name, golden)
    (FIXTURES / "pipeline-runs.json").write_text(json.dumps(PIPELINE_RUNS, indent=2))
    save_file({k: v.contiguous() for k, v in golden.items()}, FIXTURES / "image-golden.safetensors")
    print("wrote", FIXTURES)


if __name__ == "__main__":
    main()
