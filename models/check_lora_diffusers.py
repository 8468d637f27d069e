"""An avatar trained here with its LoRA (pivotal tuning, issue 15) loads in diffusers and draws what
the engine draws: `load_textual_inversion` + `load_lora_weights` into the tiny-sd2 pipeline, the
tiny-sd2 golden run's noise, the prompt below; the final latents go to
fixtures/loras/kid-diffusers.safetensors, which `engine/tests/lora_parity.rs` compares with the
engine's own drawing from the same two files.

    cargo run -p engine --bin toddler -- train-avatar --model models/fixtures/tiny-sd2 \\
        --photos models/fixtures/photos --token "<kid>" --resolution 64 --steps 20 --lr 0.05 \\
        --lora-rank 4 --lora-lr 1e-2 --out models/fixtures/loras/kid.safetensors \\
        --lora-out models/fixtures/loras/kid.lora.safetensors
    models/.venv/bin/python models/check_lora_diffusers.py
"""

from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).parent / "fixtures"
PROMPT = "an illustration of <kid> at the beach"


def main():
    pipe = StableDiffusionPipeline.from_pretrained(
        FIXTURES / "tiny-sd2", safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32
    )
    pipe.load_textual_inversion(FIXTURES / "loras" / "kid.safetensors")
    pipe.load_lora_weights(FIXTURES / "loras", weight_name="kid.lora.safetensors")
    noise = load_file(FIXTURES / "tiny-sd2-noise.safetensors")["noise"]
    with torch.no_grad():
        latents = pipe(PROMPT, num_inference_steps=1, guidance_scale=0.0, height=32, width=32,
                       latents=noise.clone(), output_type="latent").images
    save_file({"latents": latents.contiguous()}, FIXTURES / "loras" / "kid-diffusers.safetensors")
    print(f"diffusers drew |latents| = {latents.norm():.4f}")


if __name__ == "__main__":
    main()
