#!/usr/bin/env bash
# GPU figures on a lent machine (docs/benchmarks.md): the engine (native burn-wgpu on Vulkan)
# beside PyTorch CUDA, on the full-size SD-Turbo shape with random weights, at 512².
#
# Carried from the development machine: .gl/ (Vulkan loader debs), .whl/ (diffusers, peft and
# importlib_metadata wheels), .bin/toddler.xz (the release CLI, stripped), .bin/kernel_bench.xz
# (`cargo build --release -p engine --example kernel_bench`, stripped), and .lm/ (the story
# writer's real model, SmolLM2-135M-Instruct.Q4_1.gguf from `cargo xtask language-model`). Every figure is
# appended to $OUT/log as it comes, so a run cut short still reports what it measured.
set -u
OUT=${OUT:-/tmp/gpu-bench}
mkdir -p "$OUT"
log() { tee -a "$OUT/log"; }
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
xz -dc .bin/toddler.xz >/tmp/toddler && chmod +x /tmp/toddler
[ -f .bin/kernel_bench.xz ] && xz -dc .bin/kernel_bench.xz >/tmp/kernel_bench && chmod +x /tmp/kernel_bench
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | log

python3 models/make_bench_models.py /tmp/m --full | log
MODEL=/tmp/m/sd-turbo-full
RES=${RES:-512}

# GPU memory as the driver sees it, sampled beside the allocator's own figures.
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 250 >"$OUT/smi.csv" &

# f16 first (the product's default on a GPU with shader-f16), then f32 beside PyTorch's f32.
for dtype in f16 f32; do
  echo "== engine generate $dtype, 4 steps ×3 (the first run compiles the kernels)" | log
  timeout 150 /tmp/toddler generate --backend gpu --dtype $dtype --model $MODEL \
    --prompt "a toddler in a yellow raincoat" --width $RES --height $RES --steps 4 --repeat 3 \
    --out /tmp/four-$dtype.png 2>&1 | log
  # Issue 30: the same picture with the sliced attention instead of burn's flash kernel.
  echo "== engine generate $dtype, 4 steps ×2, TODDLER_ATTENTION=sliced" | log
  TODDLER_ATTENTION=sliced timeout 120 /tmp/toddler generate --backend gpu --dtype $dtype \
    --model $MODEL --prompt "a toddler in a yellow raincoat" --width $RES --height $RES \
    --steps 4 --repeat 2 --out /tmp/four-$dtype-sliced.png 2>&1 | log
  for mode in "" "--gradient-checkpointing"; do
    echo "== engine train-avatar $dtype $RES² 10 steps $mode $(date +%T)" | log
    timeout 110 /tmp/toddler train-avatar --backend gpu --dtype $dtype --model $MODEL \
      --photos models/fixtures/photos --token "<kid>" --steps 10 --resolution $RES \
      --out /tmp/kid.safetensors $mode 2>&1 | log
    echo "== done $(date +%T)" | log
  done
  # Pivotal tuning (issue 15): the same checkpointed step with a rank-4 LoRA.
  echo "== engine train-avatar $dtype $RES² 10 steps --gradient-checkpointing --lora-rank 4 $(date +%T)" | log
  timeout 110 /tmp/toddler train-avatar --backend gpu --dtype $dtype --model $MODEL \
    --photos models/fixtures/photos --token "<kid>" --steps 10 --resolution $RES \
    --out /tmp/kid.safetensors --gradient-checkpointing --lora-rank 4 2>&1 | log
done

# Issue 30: each kernel's rate beside the matmul's (convolutions, group norm, attention sliced
# and flash at 512²'s shapes), with each first call (compilation).
if [ -x /tmp/kernel_bench ]; then
  for dtype in f16 f32; do
    echo "== kernel_bench gpu $dtype" | log
    timeout 150 /tmp/kernel_bench gpu $dtype 3 2>&1 | grep "^{" | log
  done
fi

# The story writer's language model (issue 28): tokens per second writing on the GPU, f16 and
# f32, against the anchor for real laptops (≥ 60 tokens/s generating with a ≤ 0.5 B 4-bit model).
if [ -f .lm/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  for dtype in f16 f32; do
    echo "== engine complete $dtype, 64 tokens ×3 (the first run compiles the kernels)" | log
    timeout 120 /tmp/toddler complete --backend gpu --dtype $dtype \
      --model .lm/SmolLM2-135M-Instruct.Q4_1.gguf --max-tokens 64 --ignore-end --repeat 3 \
      --prompt "Once upon a time, in a little yellow house at the end of a quiet street" 2>&1 \
      | grep -E "loaded|prompt:" | log
  done
  # The story writer (issue 29): a six-page story on the GPU, twice (the first compiles the
  # kernels), against the target for a laptop GPU (≤ 10 s); the default writer's shape too when
  # .lm/ carries it (models/make_writer_shape.py).
  for model in .lm/SmolLM2-135M-Instruct.Q4_1.gguf .lm/smollm2-360m-shape-random-q8_0.gguf; do
    [ -f "$model" ] || continue
    for seed in 0 1; do
      echo "== engine write-story $model seed $seed" | log
      timeout 120 /tmp/toddler write-story --backend gpu --model "$model" --child Mia --pronouns she \
        --idea "Mia is scared of the bath - make her brave and funny" --pages 6 --seed $seed 2>&1 \
        | grep -E "loaded| pages in " | log
    done
  done
fi

echo "== PyTorch CUDA" | log
timeout 120 python3 models/bench_cuda_reference.py $MODEL $RES 2>&1 | grep -v Warning | log
