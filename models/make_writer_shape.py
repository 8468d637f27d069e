"""The default story writer's shape with random weights, for benchmarks only (the real
SmolLM2-360M-Instruct GGUF is on the hub, which this machine cannot reach).

Writes a GGUF in SmolLM2-360M-Instruct's exact shape (32 layers, hidden 960, 15 query / 5 key-value
heads, MLP 2560, 49,152-token tied embedding) quantised to Q8_0 as the hub's
`smollm2-360m-instruct-q8_0.gguf` is, with the real SmolLM2-135M-Instruct's tokenizer and chat
template (the two share them), so the engine reads, tokenises and times it exactly as the real file.

    models/.venv/bin/python models/make_writer_shape.py [SMOLLM2_135M_GGUF] [OUT]
"""

import sys
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

CACHE = Path.home() / ".cache" / "toddlerstories" / "models"
SOURCE = Path(sys.argv[1]) if len(sys.argv) > 1 else CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else CACHE / "smollm2-360m-shape-random-q8_0.gguf"

LAYERS, HIDDEN, HEADS, KV_HEADS, MLP, VOCAB = 32, 960, 15, 5, 2560, 49152
HEAD = HIDDEN // HEADS


def field(reader: gguf.GGUFReader, key: str):
    value = reader.fields[key]
    if value.types and value.types[0] == gguf.GGUFValueType.ARRAY:
        if value.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(value.parts[index]).decode("utf-8") for index in value.data]
        return [value.parts[index][0].item() for index in value.data]
    if value.types[0] == gguf.GGUFValueType.STRING:
        return bytes(value.parts[value.data[0]]).decode("utf-8")
    return value.parts[value.data[0]][0].item()


def main():
    reader = gguf.GGUFReader(str(SOURCE))
    writer = gguf.GGUFWriter(str(OUT), "llama")
    writer.add_name("SmolLM2-360M-Instruct shape, random weights")
    writer.add_block_count(LAYERS)
    writer.add_context_length(8192)
    writer.add_embedding_length(HIDDEN)
    writer.add_feed_forward_length(MLP)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(VOCAB)
    writer.add_rope_dimension_count(HEAD)
    writer.add_tokenizer_model(field(reader, "tokenizer.ggml.model"))
    writer.add_tokenizer_pre(field(reader, "tokenizer.ggml.pre"))
    writer.add_token_list(field(reader, "tokenizer.ggml.tokens"))
    writer.add_token_types(field(reader, "tokenizer.ggml.token_type"))
    writer.add_token_merges(field(reader, "tokenizer.ggml.merges"))
    writer.add_bos_token_id(field(reader, "tokenizer.ggml.bos_token_id"))
    writer.add_eos_token_id(field(reader, "tokenizer.ggml.eos_token_id"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(field(reader, "tokenizer.chat_template"))

    rng = np.random.default_rng(0)

    def matrix(rows: int, columns: int) -> np.ndarray:
        data = (rng.standard_normal((rows, columns), dtype=np.float32) * 0.02)
        return gguf.quants.quantize(data, Q.Q8_0)

    writer.add_tensor("token_embd.weight", matrix(VOCAB, HIDDEN), raw_dtype=Q.Q8_0)
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    for layer in range(LAYERS):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
        for name, rows, columns in [
            ("attn_q", HIDDEN, HIDDEN), ("attn_k", KV_HEADS * HEAD, HIDDEN), ("attn_v", KV_HEADS * HEAD, HIDDEN),
            ("attn_output", HIDDEN, HIDDEN), ("ffn_gate", MLP, HIDDEN), ("ffn_up", MLP, HIDDEN),
            ("ffn_down", HIDDEN, MLP),
        ]:
            writer.add_tensor(f"{block}.{name}.weight", matrix(rows, columns), raw_dtype=Q.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"{OUT}: {OUT.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
