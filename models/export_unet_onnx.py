"""Exports a diffusers folder's UNet to ONNX, for ONNX Runtime Web beside the engine in the same
browser (`cargo xtask bench ort`): the peer a web developer would pick.

    models/.venv/bin/python models/export_unet_onnx.py MODEL_DIR OUT.onnx LATENT_SIDE

Inputs: `sample` [1, 4, S, S] f32, `timestep` [1] f32, `encoder_hidden_states` [1, 77, D] f32;
output `out_sample`. Opset 17, the legacy TorchScript exporter (its graph is the one ONNX Runtime
Web's WebGPU and wasm backends run without extra ops).
"""

import sys

import torch
from diffusers import UNet2DConditionModel


class Step(torch.nn.Module):
    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def main(folder, out, side):
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
    inputs = (
        torch.randn(1, unet.config.in_channels, side, side),
        torch.tensor([999.0]),
        torch.randn(1, 77, unet.config.cross_attention_dim),
    )
    with torch.no_grad():
        torch.onnx.export(
            Step(unet),
            inputs,
            out,
            input_names=["sample", "timestep", "encoder_hidden_states"],
            output_names=["out_sample"],
            opset_version=17,
            dynamo=False,
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
