"""PyTorch CUDA figures beside the engine's on a lent GPU machine (`models/gpu_bench.sh`).

    python3 models/bench_cuda_reference.py MODEL_DIR RESOLUTION

Generation (diffusers pipeline, warm, 1 and 4 steps, guidance 0) in f32 (TF32 off: the engine
computes in plain f32) and in f16 (what PyTorch users run); one textual-inversion training step
(two vectors, frozen text encoder and UNet, AdamW; the same step as the engine's and as
`bench_avatar_reference.py`) in f32, with and without the UNet's gradient checkpointing, with the
peak memory PyTorch's allocator held. Prints one JSON line per figure.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline
from transformers import CLIPTextModel, CLIPTokenizer

CUDA = torch.device("cuda")


def timed(run):
    torch.cuda.synchronize()
    started = time.perf_counter()
    run()
    torch.cuda.synchronize()
    return (time.perf_counter() - started) * 1e3


def generation(folder, resolution, dtype):
    pipe = StableDiffusionPipeline.from_pretrained(
        folder, variant="fp16", torch_dtype=dtype, safety_checker=None, requires_safety_checker=False
    ).to(CUDA)
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn(1, 4, resolution // 8, resolution // 8, generator=torch.Generator().manual_seed(0))
    noise = noise.to(CUDA, dtype)

    def draw(steps):
        with torch.no_grad():
            pipe("a toddler in a yellow raincoat", num_inference_steps=steps, guidance_scale=0.0,
                 width=resolution, height=resolution, latents=noise.clone(), output_type="np")

    draw(1)
    one = min(timed(lambda: draw(1)) for _ in range(3))
    four = min(timed(lambda: draw(4)) for _ in range(3))
    print(json.dumps({"figure": "generate", "dtype": str(dtype), "resolution": resolution, "one_step_ms": one,
                      "four_steps_ms": four, "unet_step_ms": (four - one) / 3}), flush=True)
    del pipe
    torch.cuda.empty_cache()


def training(folder, resolution, checkpointing, steps=10):
    tokenizer = CLIPTokenizer.from_pretrained(f"{folder}/tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(f"{folder}/text_encoder", variant="fp16", torch_dtype=torch.float32)
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(f"{folder}/unet", variant="fp16", torch_dtype=torch.float32)
    scheduler = DDPMScheduler.from_pretrained(f"{folder}/scheduler")
    tokens = ["<kid>", "<kid>_1"]
    tokenizer.add_tokens(tokens)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    text_encoder.to(CUDA)
    unet.to(CUDA)
    if checkpointing:
        unet.enable_gradient_checkpointing()
        unet.train()  # diffusers checkpoints only in training mode
    for parameter in list(text_encoder.parameters()) + list(unet.parameters()):
        parameter.requires_grad_(False)
    table = text_encoder.get_input_embeddings().weight
    table.requires_grad_(True)
    optimizer = torch.optim.AdamW([table], lr=5e-3, weight_decay=0.0)
    input_ids = tokenizer("a photo of <kid> <kid>_1", padding="max_length", max_length=77,
                          return_tensors="pt").input_ids.to(CUDA)
    latents = torch.randn(1, 4, resolution // 8, resolution // 8, device=CUDA)
    weights = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()

    def step(index):
        noise = torch.randn_like(latents)
        t = torch.tensor([[999, 749, 499, 249][index % 4]], device=CUDA)
        noisy = scheduler.add_noise(latents, noise, t)
        states = text_encoder(input_ids)[0]
        loss = F.mse_loss(unet(noisy, t, encoder_hidden_states=states).sample, noise)
        loss.backward()
        mask = torch.zeros_like(table.grad)
        mask[ids] = 1
        table.grad *= mask
        optimizer.step()
        optimizer.zero_grad()

    step(0)
    times = sorted(timed(lambda i=i: step(i)) for i in range(1, steps + 1))
    print(json.dumps({"figure": "train", "checkpointing": checkpointing, "resolution": resolution,
                      "step_ms": times[len(times) // 2], "weights_bytes": weights,
                      "peak_allocated_bytes": torch.cuda.max_memory_allocated(),
                      "peak_reserved_bytes": torch.cuda.max_memory_reserved()}), flush=True)
    del text_encoder, unet, optimizer
    torch.cuda.empty_cache()


def main(folder, resolution):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    training(folder, resolution, checkpointing=False)
    training(folder, resolution, checkpointing=True)
    generation(folder, resolution, torch.float32)
    generation(folder, resolution, torch.float16)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
