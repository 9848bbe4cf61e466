"""Render the face-toolkit test fixtures from the embedded default generator.

Writes ``tests/fixtures/faces/``: ``face{0,1}_{112,150}.png`` (two generated faces at the input
sizes of the face-api networks) and ``scene.png`` (both faces, tilted and scaled, on a textured
320x240 canvas, for detection and alignment). Deterministic: rerunning rewrites the same files.

    python tools/make_face_fixtures.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from embedding import load_generator

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "faces"
SEEDS = (3, 11)


def render(seeds: tuple[int, ...]) -> list[Image.Image]:
    """Generated faces (64², truncation 0.7) as PIL images."""
    gen = load_generator("default").eval()
    z = torch.stack([torch.randn(gen.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    with torch.no_grad():
        img = gen(z, truncation_psi=0.7)
    arr = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in arr]


def scene(faces: list[Image.Image]) -> Image.Image:
    """Both faces, rotated and scaled, pasted onto a smooth random background."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(60, 200, size=(6, 8, 3)).astype(np.uint8)
    canvas = Image.fromarray(noise).resize((320, 240), Image.BICUBIC)
    for face, size, angle, pos in zip(faces, (128, 96), (12, -8), ((30, 50), (190, 90)), strict=True):
        big = face.resize((size, size), Image.BICUBIC).convert("RGBA").rotate(angle, Image.BICUBIC)
        canvas.paste(big, pos, big)
    return canvas


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    faces = render(SEEDS)
    for k, face in enumerate(faces):
        for size in (112, 150):
            face.resize((size, size), Image.BICUBIC).save(OUT / f"face{k}_{size}.png")
    scene(faces).save(OUT / "scene.png")


if __name__ == "__main__":
    main()
