"""The PyTorch side of `cargo xtask bench generate`: diffusers on the CPU, same folder, same
settings, two threads (the machine's cores). Prints one JSON line. With DECODER_DIR (a TAESD
folder), the picture is decoded with that AutoencoderTiny instead of the model's VAE, as
`toddler generate --decoder` does.

    models/.venv/bin/python models/bench_reference.py MODEL_DIR WIDTH HEIGHT [DECODER_DIR]
"""

import json
import resource
import sys
import time

import torch
from diffusers import AutoencoderTiny, StableDiffusionPipeline


def main(folder, width, height, decoder=None):
    torch.set_num_threads(2)
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
    if decoder:
        pipe.vae = AutoencoderTiny.from_pretrained(decoder)
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn(1, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(0))

    def run(steps):
        started = time.perf_counter()
        with torch.no_grad():
            pipe("a toddler in a yellow raincoat", num_inference_steps=steps, guidance_scale=0.0,
                 width=width, height=height, latents=noise.clone(), output_type="np")
        return (time.perf_counter() - started) * 1e3

    run(1)  # warm-up
    one = min(run(1) for _ in range(2))
    four = min(run(4) for _ in range(2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"one_step_ms": one, "four_steps_ms": four, "unet_step_ms": (four - one) / 3, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:5])
