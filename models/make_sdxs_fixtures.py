"""A tiny model in SDXS-512's real layout (issue 17) and diffusers' outputs for it.

    models/.venv/bin/python models/make_sdxs_fixtures.py

The whole folder, as the hub ships IDKiro/sdxs-512-0.9: the UNet below, a CLIP text encoder as
wide as its cross-attention (SD 2's tokenizer, padding with `!`), a TAESD-class AutoencoderTiny
as `vae/` (scaling factor 1.0) and EulerDiscreteScheduler with trailing spacing; one step, no
guidance, through diffusers' StableDiffusionPipeline.

IDKiro/sdxs-512-0.9's unet/config.json: three CrossAttnDownBlock2D levels (320/640/1280) and
three CrossAttnUpBlock2D, one layer per block, no mid block, `only_cross_attention: [true,
false, false]` (the first level's self-attention attends to the prompt instead), linear
projections, per-block heads. This keeps all of that and shrinks the widths; the prompt width
differs from every block's so a mix-up of the first attention's key width cannot pass.
"""

from pathlib import Path

import json
import shutil

import numpy as np
import torch
from diffusers import AutoencoderTiny, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

# The same TAESD layout as the tiny SD 1 fixture's decoder.
from make_image_fixtures import TAESD

FIXTURES = Path(__file__).parent / "fixtures"
NAME = "tiny-sdxs-512"

UNET = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(8, 16, 32),
    down_block_types=("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3,
    layers_per_block=1,
    attention_head_dim=(2, 4, 8),
    use_linear_projection=True,
    norm_num_groups=4,
    cross_attention_dim=12,
    mid_block_type=None,
    only_cross_attention=(True, False, False),
)


TEXT = dict(
    vocab_size=49408,
    hidden_size=UNET["cross_attention_dim"],
    intermediate_size=24,
    num_hidden_layers=2,
    num_attention_heads=2,
    max_position_embeddings=77,
    hidden_act="gelu",
    pad_token_id=1,
    bos_token_id=49406,
    eos_token_id=49407,
)
RUN = dict(prompt="a toddler with a red kite", negative_prompt=None, num_inference_steps=1, guidance_scale=0.0)
SIZE = 32


def write_pipeline(golden):
    """The rest of the folder around the UNet on disk, and diffusers' picture from it."""
    root = FIXTURES / NAME
    torch.manual_seed(301)
    text = CLIPTextModel(CLIPTextConfig(**TEXT)).eval()
    text.save_pretrained(root / "text_encoder")
    shutil.copytree(FIXTURES / "tiny-sd2" / "tokenizer", root / "tokenizer", dirs_exist_ok=True)
    torch.manual_seed(302)
    vae = AutoencoderTiny(**TAESD).eval()
    vae.save_pretrained(root / "vae")
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )
    scheduler.save_config(root / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderTiny"],
    }
    (root / "model_index.json").write_text(json.dumps(index, indent=2))
    pipe = StableDiffusionPipeline.from_pretrained(
        root, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32
    )
    noise = torch.randn(1, 4, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(6))
    save_file({"noise": noise}, FIXTURES / f"{NAME}-noise.safetensors")
    latents = pipe(**RUN, height=SIZE, width=SIZE, latents=noise.clone(), output_type="latent").images
    image = pipe(**RUN, height=SIZE, width=SIZE, latents=noise.clone(), output_type="np").images[0]
    golden["pipeline.latents"] = latents
    Image.fromarray((image * 255).round().astype(np.uint8)).save(FIXTURES / f"{NAME}-golden.png")
    (FIXTURES / f"{NAME}-run.json").write_text(json.dumps(RUN, indent=2))


def main():
    torch.manual_seed(300)
    unet = UNet2DConditionModel(**UNET).eval()
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    unet.save_pretrained(FIXTURES / NAME / "unet")
    sample = torch.randn(2, 4, 8, 8)
    context = torch.randn(2, 77, UNET["cross_attention_dim"])
    with torch.no_grad():
        output = unet(sample, torch.tensor(999.0), encoder_hidden_states=context).sample
    golden = {"sample": sample, "context": context, "output": output.contiguous()}
    write_pipeline(golden)
    save_file({k: v.contiguous() for k, v in golden.items()}, FIXTURES / f"{NAME}-golden.safetensors")
    print("wrote", FIXTURES / NAME)


if __name__ == "__main__":
    main()
