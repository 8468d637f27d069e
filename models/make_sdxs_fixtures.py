"""A tiny UNet in SDXS-512's real layout (issue 17) and diffusers' output for it.

    models/.venv/bin/python models/make_sdxs_fixtures.py

IDKiro/sdxs-512-0.9's unet/config.json: three CrossAttnDownBlock2D levels (320/640/1280) and
three CrossAttnUpBlock2D, one layer per block, no mid block, `only_cross_attention: [true,
false, false]` (the first level's self-attention attends to the prompt instead), linear
projections, per-block heads. This keeps all of that and shrinks the widths; the prompt width
differs from every block's so a mix-up of the first attention's key width cannot pass.
"""

from pathlib import Path

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import save_file

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
    save_file(
        {"sample": sample, "context": context, "output": output.contiguous()},
        FIXTURES / f"{NAME}-golden.safetensors",
    )
    print("wrote", FIXTURES / NAME)


if __name__ == "__main__":
    main()
