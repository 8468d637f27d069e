"""The PyTorch side of `cargo xtask bench language-model`: transformers on the CPU (f32, the GGUF
dequantised as transformers reads it), the same threads as the engine, the same prompt. Greedy,
token by token with the key/value cache, so prompt and generation are timed apart. Prints one
JSON line.

    models/.venv/bin/python models/bench_language_model.py GGUF_PATH PROMPT NEW_TOKENS THREADS
"""

import json
import resource
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main(path, prompt, new_tokens, threads):
    torch.set_num_threads(threads)
    path = Path(path)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    load = time.perf_counter() - started
    ids = tokenizer(prompt, return_tensors="pt").input_ids

    def run():
        with torch.no_grad():
            started = time.perf_counter()
            out = model(ids, use_cache=True)
            prompt_seconds = time.perf_counter() - started
            past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            started = time.perf_counter()
            for _ in range(new_tokens - 1):
                out = model(token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1].argmax(-1, keepdim=True)
            return prompt_seconds, time.perf_counter() - started

    run()  # warm-up
    prompt_seconds, generation_seconds = min(run() for _ in range(2))
    print(json.dumps({
        "load_seconds": load,
        "prompt_tokens": ids.shape[1],
        "prompt_tokens_per_second": ids.shape[1] / prompt_seconds,
        "generated_tokens": new_tokens,
        "tokens_per_second": (new_tokens - 1) / generation_seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
