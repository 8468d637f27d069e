"""Makes the text-side test fixtures and their golden outputs (issue 3).

Tiny random CLIP text encoders in diffusers folder layout, with the REAL CLIP vocabulary (rebuilt
from the BPE file that PyPI's open-clip-torch ships), plus the ids and hidden states that
transformers' CLIPTokenizer and CLIPTextModel produce for them. CI never runs this: it only reads
the committed output in models/fixtures/.

    python -m venv models/.venv && models/.venv/bin/pip install -r models/requirements.txt
    models/.venv/bin/pip download --no-deps open-clip-torch==3.3.0 -d /tmp/openclip
    models/.venv/bin/python models/make_text_fixtures.py /tmp/openclip/open_clip_torch-3.3.0-py3-none-any.whl
"""

import gzip
import json
import shutil
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
BPE_PATH = "open_clip/bpe_simple_vocab_16e6.txt.gz"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# Two layouts: SD 2.x / Turbo (gelu, pads with "!") and SD 1.x (quick_gelu, pads with EOS).
ENCODERS = {
    "tiny-sd2": dict(hidden_act="gelu", pad_token="!", seed=2),
    "tiny-sd1": dict(hidden_act="quick_gelu", pad_token=EOS, seed=1),
}

PROMPTS = [
    "a photo of a cat",
    "",
    "A Photo Of A CAT",
    "   lots   of\tspaces\nand\nnewlines   ",
    "a cat, a dog; and a bird!",
    "what's up? it's mia's teddy-bear...",
    "hello!!! world??? (yes) [no] {maybe}",
    "she'll say they've gone, you'd think i'm done",
    "123 4567 89.5 3.14159 1,000,000",
    "room 101, 2nd floor, 3rd door",
    "café naïve résumé Ålesund Øre Straße",
    "crème brûlée à la mode",
    "emoji 🐶🐱🦄 and 👨‍👩‍👧 family",
    "a 🎂 birthday 🎉🎈",
    "日本語のテキスト",
    "中文提示词测试",
    "한국어 문장입니다",
    "русский текст для проверки",
    "Ελληνικά γράμματα",
    "עברית וערבית: مرحبا بالعالم",
    "हिन्दी पाठ",
    "ภาษาไทย",
    "mixed 日本 and english 漢字 text",
    "tabs\tand\u00a0non-breaking\u2003spaces",
    "zero\u200bwidth space",
    "a photo of <|endoftext|> inside",
    "<|startoftext|> begins",
    "a dog <|endoftext|><|endoftext|> twice",
    "e-mail: mia@example.com, url: https://example.com/a?b=c",
    "#hashtag @mention $money 100% &amp; ^caret ~tilde `tick`",
    "quotes \"double\" 'single' «guillemets» „low“",
    "ALL CAPS SHOUTING",
    "CamelCaseWordsTogether",
    "snake_case_words_here",
    "hyphen-ated-words and under_scores",
    "a" * 10,
    "abcdefghijklmnopqrstuvwxyz",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "a watercolor illustration of a toddler in a yellow raincoat jumping in puddles",
    "crayon drawing, soft colors, a little girl with curly hair hugging a teddy bear",
    "soft 3d render of a boy brushing his teeth, bathroom, morning light, cozy",
    "flat vector art, a child at the zoo looking at a giraffe, bright, simple shapes",
    "the quick brown fox jumps over the lazy dog " * 10,
    "word " * 80,
    "1 2 3 4 5 6 7 8 9 10 " * 8,
    "!!!!!!!!!!",
    "...",
    "a photo of <mia>",
    "an illustration of <mia> at the beach, watercolor",
    "<mia> and <cat-toy> play together",
    "<Mia> with different case",
    "<mia><mia> no space",
    "x<mia>y glued",
    "<cat-toy>",
    "a cat-toy and a cat toy",
    "ﬁ ligature ① circled ＦＵＬＬＷＩＤＴＨ",
    "e\u0301 combining accent vs é",
    "ß ẞ ǅ Σίσυφος",
]

# The prompts whose hidden states are compared (all of them would make the golden file large).
HIDDEN_STATE_PROMPTS = [0, 1, 4, 12, 14, 42, 47, 49]


def build_vocabulary(wheel):
    """vocab.json and merges.txt exactly as the Stable Diffusion repos ship them."""
    with zipfile.ZipFile(wheel) as archive:
        lines = gzip.decompress(archive.read(BPE_PATH)).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [BOS, EOS]
    return {token: index for index, token in enumerate(vocab)}, merges


def bytes_to_unicode():
    """GPT-2/CLIP's reversible byte-to-printable-character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(folder, vocab, merges, pad_token):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = dict(special, model_max_length=77, do_lower_case=True, tokenizer_class="CLIPTokenizer")
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def tiny_text_encoder(hidden_act, seed):
    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        hidden_act=hidden_act,
        projection_dim=16,
    )
    model = CLIPTextModel(config).eval()
    # Random init leaves the layer norms at 1/0; perturb them so the test sees their parameters.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "layer_norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def main(wheel):
    (FIXTURES / "tokenizer-json" / "tokenizer").mkdir(parents=True, exist_ok=True)
    vocab, merges = build_vocabulary(wheel)
    golden = {"prompts": PROMPTS, "hidden_state_prompts": HIDDEN_STATE_PROMPTS, "ids": {}, "embeddings": {}}
    tensors = {}
    embedding_files = write_embeddings()
    for name, spec in ENCODERS.items():
        root = FIXTURES / name
        write_tokenizer(root / "tokenizer", vocab, merges, spec["pad_token"])
        tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
        model = tiny_text_encoder(spec["hidden_act"], spec["seed"])
        model.config.save_pretrained(root / "text_encoder")
        variants = save_weights(model, root / "text_encoder", name)
        (root / "model_index.json").write_text(
            json.dumps({"_class_name": "StableDiffusionPipeline", "tokenizer": ["transformers", "CLIPTokenizer"], "text_encoder": ["transformers", "CLIPTextModel"]}, indent=2)
        )
        golden["ids"][name] = [encode(tokenizer, prompt) for prompt in PROMPTS]
        ids = torch.tensor([golden["ids"][name][i] for i in HIDDEN_STATE_PROMPTS])
        for variant, dtype in variants.items():
            # The weights as stored (half precision rounds them), computed in f32.
            model.load_state_dict({k: v.to(dtype).float() for k, v in model.state_dict().items()})
            with torch.no_grad():
                tensors[f"{name}.{variant}.hidden_states"] = model(ids).last_hidden_state.contiguous()
        # Textual inversion exactly as diffusers' load_textual_inversion does it.
        with_embeddings(tokenizer, model, embedding_files, golden, tensors, name)
    # A folder whose tokenizer is a single tokenizer.json, as transformers saves it (SD 2 tokens).
    tokenizer = CLIPTokenizer.from_pretrained(FIXTURES / "tiny-sd2" / "tokenizer")
    tokenizer.backend_tokenizer.save(str(FIXTURES / "tokenizer-json" / "tokenizer" / "tokenizer.json"))
    for config in ["special_tokens_map.json", "tokenizer_config.json"]:
        shutil.copy(FIXTURES / "tiny-sd2" / "tokenizer" / config, FIXTURES / "tokenizer-json" / "tokenizer" / config)
    FIXTURES.mkdir(exist_ok=True)
    (FIXTURES / "text-golden.json").write_text(json.dumps(golden, ensure_ascii=False, indent=1))
    save_file(tensors, FIXTURES / "text-golden.safetensors")
    print("wrote", FIXTURES)


def encode(tokenizer, prompt):
    return tokenizer(prompt, padding="max_length", max_length=77, truncation=True).input_ids


def save_weights(model, folder, name):
    """Writes the weights; returns the variants written, each with the dtype it was stored in."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if name == "tiny-sd2":
        # f32 single file, and the diffusers fp16 variant beside it.
        save_file(state, folder / "model.safetensors")
        save_file({k: v.half() for k, v in state.items()}, folder / "model.fp16.safetensors")
        return {"f32": torch.float32, "fp16": torch.float16}
    # bf16, sharded in two with an index, in the transformers 4 key layout of the hub's
    # checkpoints (a `text_model.` prefix and a `position_ids` buffer).
    state = {f"text_model.{k}": v.to(torch.bfloat16) for k, v in state.items()}
    state["text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    keys = sorted(state)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    weight_map = {}
    for index, shard in enumerate(shards, start=1):
        file = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: state[k] for k in shard}, folder / file)
        weight_map.update({k: file for k in shard})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    return {"bf16": torch.bfloat16}


def write_embeddings():
    """A diffusers two-vector embedding and an A1111 single-vector one."""
    torch.manual_seed(7)
    folder = FIXTURES / "embeddings"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"<mia>": torch.randn(2, 16)}, folder / "mia.safetensors")
    # A1111 names the token after the file.
    save_file({"emb_params": torch.randn(1, 16)}, folder / "cat-toy.safetensors")
    save_file({"<wide>": torch.randn(1, 24)}, folder / "wrong-dimension.safetensors")
    return {"<mia>": folder / "mia.safetensors", "cat-toy": folder / "cat-toy.safetensors"}


def with_embeddings(tokenizer, model, files, golden, tensors, name):
    from diffusers.loaders.textual_inversion import TextualInversionLoaderMixin

    class Loader(TextualInversionLoaderMixin):
        pass

    loader = Loader()
    loader.hf_device_map = None
    loader.components = {}
    loader.tokenizer, loader.text_encoder = tokenizer, model
    loader.load_textual_inversion([str(f) for f in files.values()], token=list(files), tokenizer=tokenizer, text_encoder=model)
    ti_prompts = [i for i, p in enumerate(PROMPTS) if ("<" in p and "|" not in p) or "cat-toy" in p]
    converted = [loader.maybe_convert_prompt(PROMPTS[i], tokenizer) for i in ti_prompts]
    golden["embeddings"][name] = {
        "prompt_indices": ti_prompts,
        "ids": [encode(tokenizer, prompt) for prompt in converted],
    }
    with torch.no_grad():
        ids = torch.tensor(golden["embeddings"][name]["ids"][:4])
        tensors[f"{name}.embeddings.hidden_states"] = model(ids).last_hidden_state.contiguous()


if __name__ == "__main__":
    main(sys.argv[1])
