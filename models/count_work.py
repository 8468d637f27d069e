"""Reference counts for the engine's work estimate (`engine/src/estimate.rs`).

For each committed pipeline layout, diffusers' and transformers' own models are built from the
configs on PyTorch's `meta` device (no weights, any size) and run once under
`torch.utils.flop_counter.FlopCounterMode`, which counts each matmul, convolution and attention
as 2 × multiply-adds. Parameters are counted from the same models. The engine counts from the
same configs without building anything; `engine/tests/estimate.rs` holds it to these numbers.

    models/.venv/bin/python models/count_work.py   # writes models/fixtures/work-golden.json
"""

import json
import pathlib

import torch
from torch.utils.flop_counter import FlopCounterMode
from diffusers import AutoencoderKL, AutoencoderTiny, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
PIPELINES = ["tiny-sd1", "tiny-sd2", "tiny-sdxs", "tiny-sdxs-512", "sd-turbo-layout"]
# Picture sides (pixels) the counts are taken at: small, and the app's default.
SIDES = [64, 512]


def flops(run):
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            run()
    return counter.get_total_flops()


def params(model):
    return sum(p.numel() for p in model.parameters())


def vae_of(folder):
    config = json.loads((folder / "vae" / "config.json").read_text())
    kind = AutoencoderTiny if config["_class_name"] == "AutoencoderTiny" else AutoencoderKL
    return kind.from_config(config)


def count(folder):
    with torch.device("meta"):
        text_config = CLIPTextConfig.from_json_file(folder / "text_encoder" / "config.json")
        text = CLIPTextModel(text_config)
        unet = UNet2DConditionModel.from_config(
            json.loads((folder / "unet" / "config.json").read_text())
        )
        vae = vae_of(folder)
    text.eval(), unet.eval(), vae.eval()
    tokens = text_config.max_position_embeddings
    ids = torch.zeros(1, tokens, dtype=torch.long, device="meta")
    context = torch.zeros(1, tokens, unet.config.cross_attention_dim, device="meta")
    out = {
        "text_encoder": {"params": params(text), "flops": flops(lambda: text(ids))},
        "unet": {"params": params(unet)},
        "vae": {"params": params(vae)},
    }
    latent_channels = vae.config.latent_channels
    for side in SIDES:
        latent = side // 8
        sample = torch.zeros(1, unet.config.in_channels, latent, latent, device="meta")
        step = torch.tensor([999], device="meta")
        out["unet"][f"flops_{side}"] = flops(lambda: unet(sample, step, context))
        latents = torch.zeros(1, latent_channels, latent, latent, device="meta")
        picture = torch.zeros(1, 3, side, side, device="meta")
        out["vae"][f"decode_flops_{side}"] = flops(lambda: vae.decode(latents))
        out["vae"][f"encode_flops_{side}"] = flops(lambda: vae.encode(picture))
    return out


def count_taesd():
    """madebyollin/taesd: diffusers' AutoencoderTiny defaults (the app's default decoder)."""
    with torch.device("meta"):
        vae = AutoencoderTiny()
    vae.eval()
    out = {"params": params(vae)}
    for side in SIDES:
        latents = torch.zeros(1, 4, side // 8, side // 8, device="meta")
        picture = torch.zeros(1, 3, side, side, device="meta")
        out[f"decode_flops_{side}"] = flops(lambda: vae.decode(latents))
        out[f"encode_flops_{side}"] = flops(lambda: vae.encode(picture))
    return out


def main():
    golden = {name: count(FIXTURES / name) for name in PIPELINES}
    golden["taesd"] = count_taesd()
    path = FIXTURES / "work-golden.json"
    path.write_text(json.dumps(golden, indent=1) + "\n")
    print(json.dumps(golden, indent=1))


if __name__ == "__main__":
    main()
