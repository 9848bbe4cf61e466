"""The README's MobileStyleGAN figures: random samples, and a reconstruction of a real photo from two runs.

    python docs/mobilestylegan.py samples                      # docs/mobilestylegan_samples.jpg
    python docs/mobilestylegan.py reconstruction PHOTO WPLUS_RUN NOISE_RUN
                                                               # docs/mobilestylegan_reconstruction.jpg

``samples`` renders four seeds at ψ = 0.7 with the fixed noise. ``reconstruction`` lays out the
aligned photo, the render after the W+ phase (from the run that fitted W+) and after the noise
phase (from the run that continued it), captioned with their PSNR from each run's metrics.csv.
Needs ``embed fetch mobilestylegan-ffhq``.
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


def final_psnr(run: Path, stem: str, phase: str) -> float:
    """The last PSNR row of ``phase`` for ``stem`` in a run's metrics.csv."""
    with open(RunFolder(run).metrics_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["image"] == stem and r["phase"] == phase]
    return float(rows[-1]["psnr"])


def reconstruction(photo: Path, wplus_run: Path, noise_run: Path) -> None:
    """The photo, its W+ render and its W+ & noise render (the two runs may be one folder), captioned with PSNR."""
    stem = photo.stem
    wplus, noise = RunFolder(wplus_run).image_path(stem, "WI"), RunFolder(noise_run).image_path(stem, "Mkn")
    panel([("target (aligned photo)", Image.open(photo)),
           (f"W+: {final_psnr(wplus_run, stem, 'WI'):.1f} dB", Image.open(wplus)),
           (f"W+ & noise: {final_psnr(noise_run, stem, 'Mkn'):.1f} dB", Image.open(noise))],
          ROOT / "docs" / "mobilestylegan_reconstruction.jpg", TILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="figure", required=True)
    s = sub.add_parser("samples")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    s.add_argument("--psi", type=float, default=0.7)
    r = sub.add_parser("reconstruction")
    r.add_argument("photo", type=Path, help="the aligned photo the runs fitted")
    r.add_argument("wplus_run", type=Path, help="run folder of the W+ phase")
    r.add_argument("noise_run", type=Path, help="run folder of the noise phase that continued it")
    args = parser.parse_args()
    if args.figure == "samples":
        samples(args.seeds, args.psi)
    else:
        reconstruction(args.photo, args.wplus_run, args.noise_run)


if __name__ == "__main__":
    main()
