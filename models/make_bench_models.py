"""Makes models with random weights, in the real layouts, for benchmarks (not committed).

    models/.venv/bin/python models/make_bench_models.py OUT_DIR [--full]

OUT_DIR/sd-turbo-text: SD-Turbo's text side (OpenCLIP ViT-H/14 text tower: 1024 wide, 23 layers,
16 heads, gelu; `!` padding), fp16 weights as the hub ships them, with the real CLIP vocabulary
copied from the committed fixture.

OUT_DIR/mid-sd: a mid-size Stable Diffusion pipeline for UNet and generation timings: UNet
block_out_channels 128/256/256, two layers per block, cross-attention down/up blocks at the first
two levels, 8 heads, cross_attention_dim 256; a 4-layer 256-wide CLIP text encoder; an
AutoencoderKL with block_out_channels 64/128/256/256; Euler ancestral (trailing); f32 weights.

OUT_DIR/taesd: TAESD (madebyollin/taesd: diffusers' AutoencoderTiny defaults, 64 channels), random
weights in its folder layout (`config.json` + `diffusion_pytorch_model.safetensors`): the fast
decoder, for `toddler generate --decoder` and `cargo xtask bench generate`.

With --full, only OUT_DIR/sd-turbo-full: the whole SD-Turbo pipeline at full size (the text tower
above, the SD 2.1 UNet: 320/640/1280/1280, heads 5/10/20/20, linear projections, cross-attention
1024; the SD VAE), random weights saved as the hub's fp16 variants: 2.6 GB, for the browser's
streaming-load memory benchmark (`cargo xtask bench heap`).
"""

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

HERE = Path(__file__).parent


def sd_turbo_text(out):
    shutil.copytree(HERE / "fixtures" / "tiny-sd2" / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=23,
        num_attention_heads=16,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=1024,
    )
    torch.manual_seed(0)
    model = CLIPTextModel(config).eval()
    config.save_pretrained(out / "text_encoder")
    state = {f"text_model.{k}": v.half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, out / "text_encoder" / "model.fp16.safetensors")


def mid_sd(out):
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel

    shutil.copytree(HERE / "fixtures" / "tiny-sd2" / "tokenizer", out / "tokenizer", dirs_exist_ok=True)
    torch.manual_seed(0)
    text = CLIPTextModel(
        CLIPTextConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4, hidden_act="gelu", projection_dim=256)
    )
    text.save_pretrained(out / "text_encoder")
    UNet2DConditionModel(
        sample_size=32,
        block_out_channels=(128, 256, 256),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=2,
        attention_head_dim=8,
        cross_attention_dim=256,
        use_linear_projection=True,
    ).save_pretrained(out / "unet")
    AutoencoderKL(
        block_out_channels=(64, 128, 256, 256),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
    ).save_pretrained(out / "vae")
    EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1
    ).save_config(out / "scheduler")
    (out / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "feature_extractor": [null, null], "safety_checker": [null, null],'
        ' "requires_safety_checker": false, "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],'
        ' "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],'
        ' "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}'
    )


def taesd(out):
    from diffusers import AutoencoderTiny

    torch.manual_seed(2)
    AutoencoderTiny().save_pretrained(out)


def sd_turbo_full(out):
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel

    sd_turbo_text(out)
    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
    )
    unet.half().save_pretrained(out / "unet", variant="fp16")
    del unet
    AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=768,
    ).half().save_pretrained(out / "vae", variant="fp16")
    EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1
    ).save_config(out / "scheduler")
    (out / "model_index.json").write_text(
        '{"_class_name": "StableDiffusionPipeline", "scheduler": ["diffusers", "EulerAncestralDiscreteScheduler"],'
        ' "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],'
        ' "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}'
    )


if __name__ == "__main__":
    root = Path(sys.argv[1])
    if "--full" in sys.argv[2:]:
        sd_turbo_full(root / "sd-turbo-full")
        print("wrote", root / "sd-turbo-full")
        sys.exit(0)
    sd_turbo_text(root / "sd-turbo-text")
    mid_sd(root / "mid-sd")
    taesd(root / "taesd")
    print("wrote", root)
