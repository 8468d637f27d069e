"""Makes full-size models with random weights, in the real layouts, for benchmarks (not committed).

    models/.venv/bin/python models/make_bench_models.py OUT_DIR

OUT_DIR/sd-turbo-text: SD-Turbo's text side (OpenCLIP ViT-H/14 text tower: 1024 wide, 23 layers,
16 heads, gelu; `!` padding), fp16 weights as the hub ships them, with the real CLIP vocabulary
copied from the committed fixture.
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


if __name__ == "__main__":
    root = Path(sys.argv[1])
    sd_turbo_text(root / "sd-turbo-text")
    print("wrote", root)
