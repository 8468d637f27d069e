"""Round-trips an avatar file through diffusers (issue 6): loads it with
`StableDiffusionPipeline.load_textual_inversion` into the tiny fixture pipeline, encodes a prompt
with the token, and compares with the engine's own encoding of the same prompt with the same file.

    cargo run -p engine --bin toddler -- train-avatar --model models/fixtures/tiny-sd2 \\
        --photos models/fixtures/photos --token "<kid>" --steps 20 --resolution 64 --out /tmp/kid.safetensors
    cargo run -p engine --bin toddler -- encode-prompt --model models/fixtures/tiny-sd2 \\
        --embedding /tmp/kid.safetensors --out /tmp/kid-engine.safetensors "an illustration of <kid>"
    models/.venv/bin/python models/check_avatar_diffusers.py /tmp/kid.safetensors /tmp/kid-engine.safetensors

Prints the token ids and the largest difference; exits non-zero above 1e-4.
"""

import sys
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

MODEL = Path(__file__).parent / "fixtures" / "tiny-sd2"
PROMPT = "an illustration of <kid>"


def main(avatar, engine_output):
    pipe = StableDiffusionPipeline.from_pretrained(MODEL, safety_checker=None, requires_safety_checker=False)
    pipe.load_textual_inversion(avatar)
    prompt = pipe.maybe_convert_prompt(PROMPT, pipe.tokenizer)
    ids = pipe.tokenizer(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        states = pipe.text_encoder(ids)[0]
    ours = load_file(engine_output)["hidden_states"]
    difference = (states - ours).abs().max().item()
    print(f"prompt {prompt!r}: ids {ids[0][:8].tolist()}, max |diffusers − engine| = {difference:.2e}")
    sys.exit(0 if difference <= 1e-4 else 1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
