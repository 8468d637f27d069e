#!/usr/bin/env bash
# The mid-size model's UNet step and VAE decode on burn-wgpu (lavapipe here, any Vulkan GPU
# elsewhere): burn's direct convolutions (TODDLER_CONV=direct) against the engine's matmul
# convolutions, in f32 and f16, with burn built without and with its `fusion` feature.
#
#   models/lavapipe_bench.sh [MODEL_DIR] [SIZE]   (default /tmp/bench-models/mid-sd, 128)
#
# Make MODEL_DIR with `models/.venv/bin/python models/make_bench_models.py /tmp/bench-models`.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-/tmp/bench-models/mid-sd}"
size="${2:-128}"
target="${CARGO_TARGET_DIR:-target}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
for build in plain fusion; do
  features=()
  [[ $build == fusion ]] && features=(--features fusion)
  cargo build --release --locked -p engine --bin toddler "${features[@]}"
  cp "$target/release/toddler" "/tmp/toddler-$build"
done
for build in plain fusion; do
  for dtype in f32 f16; do
    for conv in direct matmul; do
      echo "=== build=$build dtype=$dtype conv=$conv"
      TODDLER_CONV=$conv "/tmp/toddler-$build" generate --model "$model" \
        --prompt "a toddler in a yellow raincoat" --width "$size" --height "$size" --steps 2 \
        --backend gpu --dtype "$dtype" --repeat 2 --out "/tmp/lavapipe-$build-$dtype-$conv.png"
    done
  done
done
