"""The README's MobileStyleGAN figures: random samples, and real photos reconstructed four ways.

    python docs/mobilestylegan.py samples               # docs/mobilestylegan_samples.jpg
    python docs/mobilestylegan.py reconstruction RUN    # docs/mobilestylegan_reconstruction.jpg

``samples`` renders four seeds at ψ = 0.7 with the fixed noise (needs ``embed fetch
mobilestylegan-ffhq``). ``reconstruction`` lays out the runs of ``benchmarks/real_face_inversion.py
--run RUN``: a row per photo with the aligned photo, then W (PTI's pivot), W+, W+ & noise and PTI,
each the image its run saved at that phase's end, captioned with the PSNR of its metrics.csv.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch
from gallery import panel
from PIL import Image

from embedding.checkpoints import load_generator, mobilestylegan
from embedding.fitting.run_folder import RunFolder
from embedding.images import to_pil

ROOT = Path(__file__).resolve().parents[1]
TILE = 256


@torch.no_grad()
def samples(seeds: list[int], psi: float) -> None:
    """Four (or len(seeds)) truncated samples with the fixed noise, in one row."""
    g = load_generator(mobilestylegan.NAME)
    z = torch.stack([torch.randn(g.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    images = g.synthesis(g.mapping(z, truncation_psi=psi), noise_mode="const").clamp(-1, 1)
    panel([(f"seed {s}", to_pil(image)) for s, image in zip(seeds, images, strict=True)],
          ROOT / "docs" / "mobilestylegan_samples.jpg", TILE)


COLUMNS = (("W", "pti", "pivot"), ("W+", "embedding", "WI"), ("W+ & noise", "embedding", "Mkn"),
           ("PTI", "pti", "tune"))


def phase_psnr(run: Path, stem: str, phase: str) -> float:
    """The last PSNR row of ``phase`` for ``stem`` in a run's metrics.csv."""
    with open(RunFolder(run).metrics_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["image"] == stem and r["phase"] == phase]
    return float(rows[-1]["psnr"])


def reconstruction(run: Path) -> None:
    """One row per aligned photo of ``run``: the photo, then each method's result at its phase end."""
    rows = []
    for photo in sorted((run / "aligned").glob("*.png")):
        tiles = [(f"{photo.stem} (aligned photo)", Image.open(photo))]
        for label, name, phase in COLUMNS:
            image = Image.open(RunFolder(run / name).image_path(photo.stem, phase))
            tiles.append((f"{label}: {phase_psnr(run / name, photo.stem, phase):.1f} dB", image))
        rows.append(tiles)
    panel(rows, ROOT / "docs" / "mobilestylegan_reconstruction.jpg", TILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    s = sub.add_parser("samples")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    s.add_argument("--psi", type=float, default=0.7)
    r = sub.add_parser("reconstruction")
    r.add_argument("run", type=Path, help="the --run folder of benchmarks/real_face_inversion.py")
    args = parser.parse_args()
    if args.figure == "samples":
        samples(args.seeds, args.psi)
    else:
        reconstruction(args.run)


if __name__ == "__main__":
    main()
