"""PyTorch's time per textual-inversion training step, for `cargo xtask bench avatar` (issue 6).

    models/.venv/bin/python models/bench_avatar_reference.py MODEL_DIR RESOLUTION STEPS

The same step as the engine's: token rows trainable (two vectors), text encoder and UNet frozen,
one photo latent at RESOLUTION/8, noise at a training timestep, MSE, AdamW. CPU, two threads.
Prints one JSON line: {"step_ms": median, "steps": STEPS}.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer


def main(folder, resolution, steps):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    tokenizer = CLIPTokenizer.from_pretrained(f"{folder}/tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(f"{folder}/text_encoder")
    unet = UNet2DConditionModel.from_pretrained(f"{folder}/unet")
    scheduler = DDPMScheduler.from_pretrained(f"{folder}/scheduler")
    tokens = ["<kid>", "<kid>_1"]
    tokenizer.add_tokens(tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    for parameter in list(text_encoder.parameters()) + list(unet.parameters()):
        parameter.requires_grad_(False)
    table = text_encoder.get_input_embeddings().weight
    table.requires_grad_(True)
    optimizer = torch.optim.AdamW([table], lr=5e-3, weight_decay=0.0)
    input_ids = tokenizer("a photo of <kid> <kid>_1", padding="max_length", max_length=77, return_tensors="pt").input_ids
    latents = torch.randn(1, 4, resolution // 8, resolution // 8)
    times = []
    for step in range(steps + 1):
        started = time.perf_counter()
        noise = torch.randn_like(latents)
        t = torch.tensor([[999, 749, 499, 249][step % 4]])
        noisy = scheduler.add_noise(latents, noise, t)
        states = text_encoder(input_ids)[0]
        loss = F.mse_loss(unet(noisy, t, encoder_hidden_states=states).sample, noise)
        loss.backward()
        # Only the new rows train (as diffusers' script restores the others after each step).
        mask = torch.zeros_like(table.grad)
        mask[ids] = 1
        table.grad *= mask
        optimizer.step()
        optimizer.zero_grad()
        if step > 0:  # the first step warms up
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(json.dumps({"step_ms": times[len(times) // 2], "steps": steps}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
