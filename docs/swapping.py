"""Make the Swapping Autoencoder figures of the docs with the shipped model and ``embed swap``.

    python docs/swapping.py                    # runs/figures/swap_grid.png, runs/figures/swap_arithmetic.png
    python docs/swapping.py --out docs         # replaces the committed figures

Both go to ``--out`` (a folder, default ``runs/figures``, outside the tracked tree):

- ``swap_grid.png``: five CelebA photos held out of training (first row: texture sources,
  first column: structure sources, diagonal: reconstructions);
- ``swap_arithmetic.png``: the texture direction from the 25 female to the 21 male CelebA-HQ
  reference photos of StarGAN v2, added to three held-out photos at strengths 0 to 3.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from PIL import Image

from datamodules.training import is_held_out
from embedding.commands.swap import main as swap
from embedding.images import resolve_images

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CELEBA_FACE = "[25, 57, 153, 185]"    # the face square of CelebA's aligned 178×218 photos (training crop)
CELEBAHQ_FACE = "[77, 115, 947, 985]"  # about the same framing in a 1024² CelebA-HQ photo
STRENGTHS = [0.0, 1.0, 2.0, 3.0]


def held_out(count: int) -> list[Path]:
    found, _ = resolve_images(str(DATA / "celeba_6k" / "img"))
    return [p for p in found if is_held_out(p, 0.05)][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "figures",
                        help="folder of the figures (default: runs/figures; docs replaces the committed ones)")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    photos = held_out(8)
    grid = [photos[i] for i in (0, 1, 3, 5, 6)]
    swap(["grid", f"[{', '.join(map(str, grid))}]", "--crop", CELEBA_FACE, "--out", str(out)])
    with tempfile.TemporaryDirectory() as tmp:
        direction = Path(tmp) / "female_to_male.pt"
        refs = DATA / "stargan2_celebahq" / "ref"
        swap(["direction", str(refs / "female"), str(refs / "male"), "--crop", CELEBAHQ_FACE,
              "--out", str(direction)])
        strips = []
        for photo in (photos[0], photos[2], photos[4]):
            swap(["arithmetic", str(photo), str(direction), "--strengths", str(STRENGTHS), "--crop", CELEBA_FACE,
                  "--out", tmp])
            strips.append(Image.open(Path(tmp) / f"{photo.stem}.female_to_male.png").convert("RGB"))
    sheet = Image.new("RGB", (strips[0].width, sum(s.height for s in strips) + 2 * (len(strips) - 1)), "white")
    for i, strip in enumerate(strips):
        sheet.paste(strip, (0, i * (strip.height + 2)))
    sheet.save(out / "swap_arithmetic.png")
    print(f"wrote {out / 'swap_grid.png'} and {out / 'swap_arithmetic.png'} (strengths {STRENGTHS}, "
          f"torch {torch.__version__})")


if __name__ == "__main__":
    main()
