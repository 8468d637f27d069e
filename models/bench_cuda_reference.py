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
from diffusers import StableDiffusionPipeline

from bench_avatar_reference import AvatarStep

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


def training(folder, resolution, checkpointing, steps=10, lora_rank=0):
    before = torch.cuda.memory_allocated()
    step = AvatarStep(folder, resolution, device=CUDA, checkpointing=checkpointing,
                      load={"variant": "fp16", "torch_dtype": torch.float32}, lora_rank=lora_rank)
    weights = torch.cuda.memory_allocated() - before
    torch.cuda.reset_peak_memory_stats()

    step(0)
    times = sorted(timed(lambda i=i: step(i)) for i in range(1, steps + 1))
    print(json.dumps({"figure": "train", "checkpointing": checkpointing, "lora_rank": lora_rank,
                      "resolution": resolution,
                      "step_ms": times[len(times) // 2], "weights_bytes": weights,
                      "peak_allocated_bytes": torch.cuda.max_memory_allocated(),
                      "peak_reserved_bytes": torch.cuda.max_memory_reserved()}), flush=True)
    del step
    torch.cuda.empty_cache()


def main(folder, resolution):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__}), flush=True)
    training(folder, resolution, checkpointing=False)
    training(folder, resolution, checkpointing=True)
    training(folder, resolution, checkpointing=True, lora_rank=4)
    generation(folder, resolution, torch.float32)
    generation(folder, resolution, torch.float16)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
