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


class AvatarStep:
    """The engine's training step, in PyTorch, on `device`: two new token rows trainable, text
    encoder and UNet frozen, one random photo latent, noise at a training timestep, MSE, AdamW.
    `load` are extra `from_pretrained` options (a variant, a dtype)."""

    def __init__(self, folder, resolution, device="cpu", load=None, checkpointing=False, lora_rank=0):
        load = load or {}
        self.tokenizer = CLIPTokenizer.from_pretrained(f"{folder}/tokenizer")
        self.text_encoder = CLIPTextModel.from_pretrained(f"{folder}/text_encoder", **load)
        self.unet = UNet2DConditionModel.from_pretrained(f"{folder}/unet", **load)
        self.scheduler = DDPMScheduler.from_pretrained(f"{folder}/scheduler")
        tokens = ["<kid>", "<kid>_1"]
        self.tokenizer.add_tokens(tokens)
        self.ids = self.tokenizer.convert_tokens_to_ids(tokens)
        self.text_encoder.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        self.text_encoder.to(device)
        self.unet.to(device)
        if checkpointing:
            self.unet.enable_gradient_checkpointing()
            self.unet.train()  # diffusers checkpoints only in training mode
        for parameter in list(self.text_encoder.parameters()) + list(self.unet.parameters()):
            parameter.requires_grad_(False)
        self.table = self.text_encoder.get_input_embeddings().weight
        self.table.requires_grad_(True)
        groups = [{"params": [self.table], "lr": 5e-3, "weight_decay": 0.0}]
        if lora_rank > 0:
            # Pivotal tuning as the engine trains it (issue 15): a peft LoRA on the UNet's
            # attention projections, alpha = rank, its own AdamW rate and weight decay.
            from peft import LoraConfig

            self.unet.add_adapter(LoraConfig(r=lora_rank, lora_alpha=lora_rank,
                                             target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
            factors = [parameter for name, parameter in self.unet.named_parameters() if "lora_" in name]
            groups.append({"params": factors, "lr": 1e-4, "weight_decay": 1e-4})
        self.optimizer = torch.optim.AdamW(groups)
        self.input_ids = self.tokenizer(
            "a photo of <kid> <kid>_1", padding="max_length", max_length=77, return_tensors="pt"
        ).input_ids.to(device)
        self.latents = torch.randn(1, 4, resolution // 8, resolution // 8, device=device)
        self.device = device

    def __call__(self, index):
        noise = torch.randn_like(self.latents)
        t = torch.tensor([[999, 749, 499, 249][index % 4]], device=self.device)
        noisy = self.scheduler.add_noise(self.latents, noise, t)
        states = self.text_encoder(self.input_ids)[0]
        loss = F.mse_loss(self.unet(noisy, t, encoder_hidden_states=states).sample, noise)
        loss.backward()
        # Only the new rows train (as diffusers' script restores the others after each step).
        mask = torch.zeros_like(self.table.grad)
        mask[self.ids] = 1
        self.table.grad *= mask
        self.optimizer.step()
        self.optimizer.zero_grad()


def main(folder, resolution, steps):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    step = AvatarStep(folder, resolution)
    times = []
    for index in range(steps + 1):
        started = time.perf_counter()
        step(index)
        if index > 0:  # the first step warms up
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(json.dumps({"step_ms": times[len(times) // 2], "steps": steps}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
