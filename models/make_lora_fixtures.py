"""LoRA files and golden outputs (issue 15), from diffusers' `load_lora_weights` and peft.

    models/.venv/bin/python models/make_lora_fixtures.py

Writes fixtures/loras/:
- tiny-sd1-kohya.safetensors: a kohya / A1111 file (`lora_unet_…`, `lora_te_…`, `lora_down`,
  `lora_up`, `alpha`) on every attention projection, the feed-forward, the 1×1-convolution
  `proj_in`/`proj_out` of tiny-sd1 and the text encoder's attention and MLP;
- tiny-sd2-peft.safetensors: diffusers' current format (`unet.….lora_A/lora_B.weight`,
  `text_encoder.…`, alpha in `lora_adapter_metadata`), written by `save_lora_weights` from peft;
- tiny-sd2-old.safetensors: the older diffusers names (`.lora.down.weight`,
  `.lora_linear_layer.up.weight`), alpha = rank;
- lora-golden.safetensors: the final latents of diffusers' pipeline (the runs of
  pipeline-runs.json with their committed noise) with each file at two scales, and both tiny-sd2
  files at once with their own scales (`set_adapters`);
- avatar-lora-start.safetensors + the `lora.*` entries of avatar-lora-golden.safetensors: pivotal
  tuning's gradient. The avatar case of make_avatar_fixtures.py (same vectors, latents, noise,
  timesteps) with a peft LoRA (rank 2, alpha 2) on the UNet's `to_q`/`to_k`/`to_v`/`to_out.0`,
  both factors random so every gradient is non-zero: the loss and its gradients with respect to
  the token vectors and every factor, from torch autograd.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel, CLIPTokenizer
from transformers.integrations import peft as transformers_peft

# transformers 5.24 asks for peft >= 0.22 before it attaches an adapter to the text encoder, but
# 0.21.2 is the newest peft on PyPI (2026-12); its LoRA layers are what is needed here.
transformers_peft.check_peft_version = lambda min_version: None

FIXTURES = Path(__file__).parent / "fixtures"
LORAS = FIXTURES / "loras"
SIZE = 32
SCALES = [1.0, 0.5]
TRAINED = ["to_q", "to_k", "to_v", "to_out.0"]


def pipeline(name):
    return StableDiffusionPipeline.from_pretrained(
        FIXTURES / name, safety_checker=None, requires_safety_checker=False, torch_dtype=torch.float32
    )


def run(pipe, name):
    runs = json.loads((FIXTURES / "pipeline-runs.json").read_text())
    noise = load_file(FIXTURES / f"{name}-noise.safetensors")["noise"]
    with torch.no_grad():
        return pipe(**runs[name], height=SIZE, width=SIZE, latents=noise.clone(), output_type="latent").images


def kohya_file(generator):
    """Random factors on every adaptable layer of tiny-sd1, in kohya's names."""
    pipe = pipeline("tiny-sd1")
    tensors = {}
    rank = 4
    for prefix, model, wanted in [
        ("lora_unet", pipe.unet, lambda n: ".attentions." in n and (n.endswith(("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")))),
        ("lora_te", pipe.text_encoder, lambda n: n.endswith(("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"))),
    ]:
        for module_name, module in model.named_modules():
            if not wanted(module_name):
                continue
            if isinstance(module, torch.nn.Linear):
                down = torch.randn(rank, module.in_features, generator=generator) * 0.3
                up = torch.randn(module.out_features, rank, generator=generator) * 0.3
            elif isinstance(module, torch.nn.Conv2d):
                down = torch.randn(rank, module.in_channels, 1, 1, generator=generator) * 0.3
                up = torch.randn(module.out_channels, rank, 1, 1, generator=generator) * 0.3
            else:
                continue
            if prefix == "lora_te":
                # kohya's names come from transformers 4's `text_model.encoder.…`.
                module_name = f"text_model.{module_name}"
            key = f"{prefix}_{module_name.replace('.', '_')}"
            tensors[f"{key}.lora_down.weight"] = down
            tensors[f"{key}.lora_up.weight"] = up
            # kohya's alpha: the term is scaled by alpha / rank = 1/2. One alpha for every layer,
            # as kohya's `network_alpha` writes it: diffusers 0.42 mis-assigns alphas that differ
            # between layers (its `alpha_pattern` keys keep `.processor.…lora.down.weight` and
            # match no module), where kohya and A1111 scale each layer by its own.
            tensors[f"{key}.alpha"] = torch.tensor(2.0)
    save_file(tensors, LORAS / "tiny-sd1-kohya.safetensors")
    return len(tensors) // 3


def randomise(model, generator):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


def peft_files(generator):
    """tiny-sd2 with peft adapters on the UNet and the text encoder, saved as diffusers does."""
    pipe = pipeline("tiny-sd2")
    unet_config = LoraConfig(
        r=4,
        lora_alpha=8,
        alpha_pattern={"attn2.to_k": 2},
        target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"],
    )
    text_config = LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    pipe.unet.add_adapter(unet_config)
    pipe.text_encoder.add_adapter(text_config)
    randomise(pipe.unet, generator)
    randomise(pipe.text_encoder, generator)
    unet_layers = get_peft_model_state_dict(pipe.unet)
    text_layers = get_peft_model_state_dict(pipe.text_encoder)

    def metadata(config):
        values = config.to_dict()
        return {key: sorted(value) if isinstance(value, set) else value for key, value in values.items()}

    StableDiffusionPipeline.save_lora_weights(
        LORAS,
        unet_lora_layers=unet_layers,
        text_encoder_lora_layers=text_layers,
        unet_lora_adapter_metadata=metadata(unet_config),
        text_encoder_lora_adapter_metadata=metadata(text_config),
        weight_name="tiny-sd2-peft.safetensors",
    )
    # The older names, on the same factors (alpha = rank there: the terms are scaled by 1).
    old = {}
    for key, value in load_file(LORAS / "tiny-sd2-peft.safetensors").items():
        if key.startswith("unet."):
            key = key.replace(".lora_A.weight", ".lora.down.weight").replace(".lora_B.weight", ".lora.up.weight")
        else:
            key = key.replace(".lora_A.weight", ".lora_linear_layer.down.weight").replace(
                ".lora_B.weight", ".lora_linear_layer.up.weight"
            )
        old[key] = value.flip(0).contiguous() if "down" in key else value
    save_file(old, LORAS / "tiny-sd2-old.safetensors")


def adapted_layers(model):
    return sum(1 for name, _ in model.named_modules() if name.endswith("lora_A"))


def goldens():
    golden = {}
    cases = [
        ("tiny-sd1", [("kohya", "tiny-sd1-kohya.safetensors")]),
        ("tiny-sd2", [("peft", "tiny-sd2-peft.safetensors")]),
        ("tiny-sd2", [("old", "tiny-sd2-old.safetensors")]),
    ]
    for name, files in cases:
        pipe = pipeline(name)
        base = run(pipe, name)
        for adapter, file in files:
            pipe.load_lora_weights(LORAS, weight_name=file, adapter_name=adapter)
        print(f"{name}: {adapted_layers(pipe.unet)} UNet and {adapted_layers(pipe.text_encoder)} text layers adapted")
        for scale in SCALES:
            pipe.set_adapters([adapter], adapter_weights=[scale])
            latents = run(pipe, name)
            golden[f"{Path(file).stem}@{scale}"] = latents
            print(f"  {file} at {scale}: |latents − without| = {(latents - base).norm() / base.norm():.3f} (relative)")
    pipe = pipeline("tiny-sd2")
    pipe.load_lora_weights(LORAS, weight_name="tiny-sd2-peft.safetensors", adapter_name="peft")
    pipe.load_lora_weights(LORAS, weight_name="tiny-sd2-old.safetensors", adapter_name="old")
    pipe.set_adapters(["peft", "old"], adapter_weights=[0.7, 0.4])
    golden["tiny-sd2-peft@0.7+tiny-sd2-old@0.4"] = run(pipe, "tiny-sd2")
    save_file({key: value.contiguous() for key, value in golden.items()}, LORAS / "lora-golden.safetensors")


def training_gradients(generator):
    """Loss and gradients of pivotal tuning (token vectors + UNet LoRA) on the avatar case."""
    avatar = json.loads((FIXTURES / "avatar-golden.json").read_text())
    start = load_file(FIXTURES / "avatar-golden.safetensors")
    model = FIXTURES / avatar["model"]
    tokenizer = CLIPTokenizer.from_pretrained(model / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(model / "text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(model / "unet").eval()
    scheduler = DDPMScheduler.from_pretrained(model / "scheduler")

    tokenizer.add_tokens(avatar["tokens"])
    ids = tokenizer.convert_tokens_to_ids(avatar["tokens"])
    text_encoder.resize_token_embeddings(len(tokenizer))
    for parameter in list(text_encoder.parameters()) + list(unet.parameters()):
        parameter.requires_grad_(False)
    table = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[ids] = start["vectors"]
    table.requires_grad_(True)

    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian", target_modules=TRAINED))
    randomise(unet, generator)
    layers = get_peft_model_state_dict(unet)
    StableDiffusionPipeline.save_lora_weights(LORAS, unet_lora_layers=layers, weight_name="avatar-lora-start.safetensors")
    factors = {name: parameter for name, parameter in unet.named_parameters() if "lora_" in name}
    assert factors and all(parameter.requires_grad for parameter in factors.values())

    input_ids = tokenizer(avatar["prompt"], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    golden = {}
    for case in avatar["cases"]:
        timestep = case["timestep"]
        table.grad = None
        for parameter in factors.values():
            parameter.grad = None
        t = torch.tensor([timestep])
        noisy = scheduler.add_noise(start["latents"], start["noise"], t)
        states = text_encoder(input_ids)[0]
        prediction = unet(noisy, t, encoder_hidden_states=states).sample
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(start["latents"], start["noise"], t)
        else:
            target = start["noise"]
        loss = F.mse_loss(prediction.float(), target.float(), reduction="mean")
        loss.backward()
        golden[f"t{timestep}.loss"] = loss.detach().reshape(1)
        golden[f"t{timestep}.vectors.grad"] = table.grad[ids].clone()
        for name, parameter in factors.items():
            # `…attn1.to_q.lora_A.default.weight` → `…attn1.to_q.lora_A.weight`, the file's name.
            golden[f"t{timestep}.{name.replace('.default', '')}.grad"] = parameter.grad.clone()
        print(f"t={timestep}: loss {loss.item():.6f}, {len(factors)} factors, |grad A0| {next(iter(factors.values())).grad.norm():.3e}")
    save_file({key: value.contiguous() for key, value in golden.items()}, LORAS / "avatar-lora-golden.safetensors")


def main():
    LORAS.mkdir(exist_ok=True)
    generator = torch.Generator().manual_seed(15)
    layers = kohya_file(generator)
    print(f"kohya file: {layers} layers")
    peft_files(generator)
    goldens()
    training_gradients(generator)


if __name__ == "__main__":
    main()
