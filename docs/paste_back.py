"""The group-photo figure of docs/paste_back.md: three real faces fitted, edited and pasted back into one photo.

    embed fetch mobilestylegan-ffhq
    python docs/paste_back.py                       # runs/figures/paste_back/group.jpg
    python docs/paste_back.py --out docs/paste_back   # replaces the committed figure

Three CelebA-HQ photos (``../shared/data/stargan2_celebahq``) are scaled, turned and placed on a
blurred background of about 2000×1200 (``group.png``). Then, each step a plain ``embed`` command:
``embed align`` finds and aligns the three faces at 1024² (with their records), ``embed fit`` fits
them as one group with MobileStyleGAN (W+ then noise, the schedule ``--steps``), ``embed edit
direction boundary smile`` finds a smile direction, ``embed edit attribute ... --paste_back true``
moves each face along it (and pastes each frame into the photo alone), and ``embed paste`` puts all
three reconstructions, then all three edits, into the photo. Runs land in ``--runs`` (default
``runs/paste_back``; finished steps are reused). The figure shows the photo, the pasted
reconstruction and the pasted smile side by side, and each face of each below it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from gallery import embed  # docs/gallery.py: run embed, print the command and its time
from PIL import Image, ImageDraw, ImageFilter

from embedding.faces.align import AlignmentRecord

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "stargan2_celebahq"  # not in the repository
# (photo, side in the group photo, turn in degrees, centre as fractions of the canvas)
PLACES = (("src/female/051340", 560, -12.0, (0.2, 0.52)), ("src/male/005735", 500, 8.0, (0.5, 0.45)),
          ("ref/female/058881", 620, 3.0, (0.8, 0.55)))
CANVAS = (2000, 1200)
GENERATOR = "mobilestylegan-ffhq"


def head_alpha(size: int) -> Image.Image:
    """A soft oval over a CelebA-HQ photo's head and shoulders, so the photo blends into the background."""
    alpha = Image.new("L", (size, size), 0)
    ImageDraw.Draw(alpha).ellipse([size * 0.08, size * 0.02, size * 0.92, size * 0.97], fill=255)
    return alpha.filter(ImageFilter.GaussianBlur(size * 0.04))


def group_photo(places=PLACES, canvas: tuple[int, int] = CANVAS, seed: int = 0) -> Image.Image:
    """The photos of ``places`` scaled, turned and laid on a blurred, darkened mix of themselves."""
    photos = [Image.open(DATA / f"{name}.jpg").convert("RGB") for name, *_ in places]
    rng = np.random.default_rng(seed)
    background = photos[0].resize(canvas).filter(ImageFilter.GaussianBlur(60))
    background = Image.blend(background, Image.new("RGB", canvas, tuple(int(v) for v in rng.integers(60, 120, 3))),
                             0.5)
    for photo, (_, side, turn, (cx, cy)) in zip(photos, places, strict=True):
        tile = photo.resize((side, side), Image.LANCZOS)
        alpha = head_alpha(side)
        tile, alpha = tile.rotate(turn, Image.BICUBIC, expand=True), alpha.rotate(turn, Image.BICUBIC, expand=True)
        corner = (int(cx * canvas[0] - tile.width / 2), int(cy * canvas[1] - tile.height / 2))
        background.paste(tile, corner, alpha)
    return background


def face_boxes(aligned: Path) -> list[tuple[int, int, int, int]]:
    """A square box around each aligned face of the group photo (the middle of its quad), from the records."""
    boxes = []
    for path in sorted(aligned.glob("group_*.json")):
        record = AlignmentRecord.load(path)
        (cx, cy), half = record.quad.mean(axis=0), 0.32 * np.hypot(*(record.quad[3] - record.quad[0]))
        boxes.append((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
    return sorted(boxes)


def figure(panels: list[tuple[str, Path]], boxes: list[tuple[int, int, int, int]], path: Path,
           width: int = 800) -> None:
    """The whole photos side by side, each ``width`` wide and titled, each face of each below it, as a JPEG."""
    images = [Image.open(p).convert("RGB") for _, p in panels]
    height, cell = round(images[0].height * width / images[0].width), width // len(boxes)
    sheet = Image.new("RGB", (width * len(images), height + 24 + cell), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, ((title, _), image) in enumerate(zip(panels, images, strict=True)):
        sheet.paste(image.resize((width, height), Image.LANCZOS), (k * width, 24))
        draw.text((k * width + 6, 6), title, fill=(0, 0, 0))
        for j, box in enumerate(boxes):
            sheet.paste(image.crop(box).resize((cell, cell), Image.LANCZOS), (k * width + j * cell, height + 24))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=88)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "paste_back")
    parser.add_argument("--steps", default="{WI: 60, Mkn: 30}", help="embed fit's --model.steps")
    parser.add_argument("--samples", type=int, default=200, help="generator samples of the smile boundary")
    parser.add_argument("--strength", type=float, default=4.0, help="how far along the smile direction")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "figures" / "paste_back",
                        help="folder of the figure (default runs/figures/paste_back; docs/paste_back replaces "
                             "the committed one)")
    args = parser.parse_args()
    runs = args.runs
    photo = runs / "group.png"
    if not photo.is_file():
        runs.mkdir(parents=True, exist_ok=True)
        group_photo().save(photo)
    aligned, fit, edit, smile = runs / "aligned", runs / "fit", runs / "edit", runs / "smile.pt"
    if not (aligned / "group_2.json").is_file():
        embed("align", str(photo), "--out", str(aligned), "--size", "1024")
    if not (fit / "latents" / "group_2.pt").is_file():
        embed("fit", "--config", "recipes/reconstruct.yaml", "--model.generator", GENERATOR, "--model.steps",
              args.steps, "--data.images", str(aligned), "--data.batch_size", "3", "--trainer.default_root_dir",
              str(fit), "--trainer.enable_progress_bar", "false")
    if not smile.is_file():
        embed("edit", "direction", "boundary", "smile", "--generator", GENERATOR, "--samples", str(args.samples),
              "--out", str(smile))
    strength = f"{args.strength:g}"
    for k in range(3):
        if not (edit / f"group_{k}.smile.pasted" / f"{strength}.png").is_file():
            embed("edit", "attribute", str(fit / "latents" / f"group_{k}.pt"), str(smile), "--strengths",
                  f"[0, {strength}]", "--out", str(edit), "--paste_back", "true")
    embed("paste", *[str(fit / "latents" / f"group_{k}.pt") for k in range(3)], "--out", str(runs / "pasted_fit"))
    embed("paste", *[str(edit / f"group_{k}.smile" / f"{strength}.pt") for k in range(3)], "--records",
          str(aligned), "--out", str(runs / "pasted_smile"))
    figure([("group photo (three CelebA-HQ faces)", photo),
            (f"W+ & noise reconstructions pasted back ({args.steps})", runs / "pasted_fit" / "group.png"),
            (f"smile edit (+{strength}) pasted back", runs / "pasted_smile" / "group.png")],
           face_boxes(aligned), args.out / "group.jpg")


if __name__ == "__main__":
    main()
