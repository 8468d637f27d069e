"""Golden loss and gradient for avatar (textual-inversion) training (issue 6), from torch autograd.

    models/.venv/bin/python models/make_avatar_fixtures.py [--photos]

On the tiny-sd2 fixture: two new tokens `<kid>` `<kid>_1` (diffusers' multi-vector naming) with
seeded vectors; the prompt "a photo of <kid>" (expanded to both tokens); fixed latents, noise and
timesteps. For each timestep: the noisy latents from the scheduler's `add_noise`, the UNet's
prediction with the text encoder's hidden states, the MSE against the target (epsilon or v, per
`prediction_type`), and the gradient of that loss with respect to the two token vectors — exactly
what diffusers' textual-inversion training back-propagates (token embedding rows, frozen
everything else). Writes fixtures/avatar-golden.safetensors and fixtures/avatar-golden.json.
With --photos, writes the fixture photos instead (see make_photos).
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = FIXTURES / "tiny-sd2"
TOKENS = ["<kid>", "<kid>_1"]
PROMPT = "a photo of <kid> <kid>_1"
TIMESTEPS = [999, 499]


def main():
    torch.manual_seed(7)
    tokenizer = CLIPTokenizer.from_pretrained(MODEL / "tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(MODEL / "text_encoder").eval()
    unet = UNet2DConditionModel.from_pretrained(MODEL / "unet").eval()
    scheduler = DDPMScheduler.from_pretrained(MODEL / "scheduler")
    hidden = text_encoder.config.hidden_size

    tokenizer.add_tokens(TOKENS)
    ids = tokenizer.convert_tokens_to_ids(TOKENS)
    text_encoder.resize_token_embeddings(len(tokenizer))
    vectors = torch.randn(len(TOKENS), hidden) * 0.5
    latents = torch.randn(1, 4, 4, 4)
    noise = torch.randn(1, 4, 4, 4)

    for parameter in list(text_encoder.parameters()) + list(unet.parameters()):
        parameter.requires_grad_(False)
    table = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[ids] = vectors
    table.requires_grad_(True)

    input_ids = tokenizer(PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    golden = {"vectors": vectors, "latents": latents, "noise": noise}
    cases = []
    for timestep in TIMESTEPS:
        table.grad = None
        t = torch.tensor([timestep])
        noisy = scheduler.add_noise(latents, noise, t)
        states = text_encoder(input_ids)[0]
        prediction = unet(noisy, t, encoder_hidden_states=states).sample
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, t)
        else:
            target = noise
        loss = F.mse_loss(prediction.float(), target.float(), reduction="mean")
        loss.backward()
        golden[f"t{timestep}.grad"] = table.grad[ids].clone()
        golden[f"t{timestep}.loss"] = loss.detach().reshape(1)
        cases.append({"timestep": timestep, "loss": loss.item()})
        print(f"t={timestep}: loss {loss.item():.6f}, |grad| {table.grad[ids].norm():.3e}")

    save_file({k: v.contiguous() for k, v in golden.items()}, FIXTURES / "avatar-golden.safetensors")
    (FIXTURES / "avatar-golden.json").write_text(
        json.dumps({"model": "tiny-sd2", "tokens": TOKENS, "prompt": PROMPT, "input_ids": input_ids[0].tolist(), "cases": cases}, indent=1)
        + "\n"
    )


if __name__ == "__main__" and "--photos" not in __import__("sys").argv:
    main()


def make_photos():
    """Four small synthetic "photos" of the same cartoon toddler (face, hair, eyes) on different
    backgrounds, in the formats parents upload: JPEG (one with EXIF orientation 6, stored
    rotated), PNG and WebP. Written to fixtures/photos/."""
    from PIL import Image, ImageDraw

    out = FIXTURES / "photos"
    out.mkdir(exist_ok=True)
    backgrounds = [(120, 170, 220), (240, 220, 160), (170, 210, 160), (230, 180, 190)]
    for index, background in enumerate(backgrounds):
        width, height = (96, 128) if index % 2 == 0 else (128, 96)
        picture = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(picture)
        cx, cy, r = width // 2 + (index - 1) * 3, height // 2, 26
        draw.ellipse([cx - r, cy - r - 12, cx + r, cy + r - 4], fill=(120, 70, 30))  # hair
        draw.ellipse([cx - r + 4, cy - r + 2, cx + r - 4, cy + r], fill=(245, 200, 170))  # face
        for dx in (-9, 9):
            draw.ellipse([cx + dx - 3, cy - 5, cx + dx + 3, cy + 1], fill=(40, 40, 60))  # eyes
        draw.arc([cx - 9, cy + 4, cx + 9, cy + 16], 20, 160, fill=(180, 60, 60), width=2)  # smile
        if index == 0:
            # Stored rotated, with EXIF "rotate 90° clockwise to display" (orientation 6).
            exif = Image.Exif()
            exif[0x0112] = 6
            picture.transpose(Image.Transpose.ROTATE_90).save(out / "toddler-1.jpg", quality=90, exif=exif)
        elif index == 1:
            picture.save(out / "toddler-2.png")
        elif index == 2:
            picture.save(out / "toddler-3.webp", quality=90)
        else:
            picture.save(out / "toddler-4.jpg", quality=90)


if __name__ == "__main__" and "--photos" in __import__("sys").argv:
    make_photos()
