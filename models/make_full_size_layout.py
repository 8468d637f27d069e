"""Writes the layout of the full-size SD-Turbo made by `make_bench_models.py OUT --full`: its
configs and, for each weights file, every tensor's name, type and shape in file order (read from
the safetensors headers). The engine's `cargo xtask full-size-model` fills this layout with seeded
random values, so CI (which has no torch) can test at the real size.

    python3 models/make_full_size_layout.py OUT/sd-turbo-full models/fixtures/sd-turbo-layout
"""

import json
import shutil
import struct
import sys
from pathlib import Path


def header(path):
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        entries = json.loads(file.read(length))
    entries.pop("__metadata__", None)
    ordered = sorted(entries.items(), key=lambda item: item[1]["data_offsets"][0])
    return [[name, info["dtype"], info["shape"]] for name, info in ordered]


def main(source, out):
    source, out = Path(source), Path(out)
    files = {}
    for weights in sorted(source.rglob("*.safetensors")):
        files[str(weights.relative_to(source))] = header(weights)
    for config in sorted(source.rglob("*.json")):
        relative = config.relative_to(source)
        if relative.parts[0] == "tokenizer":
            continue  # The real CLIP tokenizer is the committed tiny-sd2 fixture's.
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(config, out / relative)
    # One tensor per line: a reviewable diff when the layout changes.
    lines = []
    for index, (file, tensors) in enumerate(files.items()):
        rows = ",\n".join("  " + json.dumps(tensor) for tensor in tensors)
        comma = "," if index + 1 < len(files) else ""
        lines.append(f" {json.dumps(file)}: [\n{rows}\n ]{comma}")
    (out / "tensors.json").write_text("{\n" + "\n".join(lines) + "\n}\n")
    count = sum(len(tensors) for tensors in files.values())
    print(f"{count} tensors in {len(files)} files -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
