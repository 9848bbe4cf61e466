"""The MobileStyleGAN figures of the docs: random samples, and real photos reconstructed four ways.

    python docs/mobilestylegan.py samples                        # runs/figures/mobilestylegan_samples.jpg
    python docs/mobilestylegan.py reconstruction RUN             # runs/figures/mobilestylegan_reconstruction.jpg
    python docs/mobilestylegan.py attribute smile STRIP...       # runs/figures/mobilestylegan_smile.jpg
    python docs/mobilestylegan.py samples --out docs             # replaces the committed figure

Each figure goes to ``--out`` (a folder, default ``runs/figures``, outside the tracked tree);
``--out docs`` writes where the committed figures live.

``samples`` renders four seeds at ψ = 0.7 with the fixed noise (needs ``embed fetch
mobilestylegan-ffhq``). ``reconstruction`` lays out the runs of ``benchmarks/real_face_inversion.py
--run RUN``: a row per photo with the aligned photo, then W (PTI's pivot), W+, W+ & noise and PTI,
each the image its run saved at that phase's end, captioned with the PSNR of its metrics.csv.
``attribute`` lays out strips written by ``embed edit attribute`` (one row each), captioning every
frame with face-api's score of the attribute and its identity distance from the unedited frame,
both read in the face box FFHQ alignment implies.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from gallery import panel, phase_psnr
from PIL import Image

from embedding.checkpoints import load_generator, mobilestylegan
from embedding.faces import face_attributes, identity_distance
from embedding.faces.attributes import ATTRIBUTE_SCORES
from embedding.faces.crop import FFHQ
from embedding.fitting.run_folder import RunFolder
from embedding.images import to_pil

ROOT = Path(__file__).resolve().parents[1]
TILE = 256


@torch.no_grad()
def samples(seeds: list[int], psi: float, out: Path) -> None:
    """Four (or len(seeds)) truncated samples with the fixed noise, in one row."""
    g = load_generator(mobilestylegan.NAME)
    z = torch.stack([torch.randn(g.z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds])
    images = g.synthesis(g.mapping(z, truncation_psi=psi), noise_mode="const").clamp(-1, 1)
    panel([(f"seed {s}", to_pil(image)) for s, image in zip(seeds, images, strict=True)],
          out / "mobilestylegan_samples.jpg", TILE)


COLUMNS = (("W", "pti", "pivot"), ("W+", "embedding", "WI"), ("W+ & noise", "embedding", "Mkn"),
           ("PTI", "pti", "tune"))


def reconstruction(run: Path, out: Path) -> None:
    """One row per aligned photo of ``run``: the photo, then each method's result at its phase end."""
    rows = []
    for photo in sorted((run / "aligned").glob("*.png")):
        tiles = [(f"{photo.stem} (aligned photo)", Image.open(photo))]
        for label, name, phase in COLUMNS:
            image = Image.open(RunFolder(run / name).image_path(photo.stem, phase))
            tiles.append((f"{label}: {phase_psnr(run / name, photo.stem, phase):.1f} dB", image))
        rows.append(tiles)
    panel(rows, out / "mobilestylegan_reconstruction.jpg", TILE)


@torch.no_grad()
def attribute(name: str, strips: list[Path], out: Path) -> None:
    """Each strip ``<stem>.<direction>.png`` in a row, its frames captioned with score and identity drift."""
    rows = []
    for strip in strips:
        strengths = sorted(float(p.stem) for p in strip.with_suffix("").glob("*.pt"))
        frames = torch.from_numpy(np.array(Image.open(strip).convert("RGB"))).permute(2, 0, 1).float() / 127.5 - 1
        frames = torch.stack(frames.chunk(len(strengths), dim=-1))
        score = ATTRIBUTE_SCORES[name](face_attributes(frames, box=FFHQ))
        drift = identity_distance(frames, frames[strengths.index(0.0)].expand_as(frames), box=FFHQ)
        print(f"{strip.name}: " + ", ".join(f"{s:+g}: {name} {v:.2f}, identity {d:.2f}"
                                              for s, v, d in zip(strengths, score, drift, strict=True)))
        rows.append([(f"{strip.stem.split('.')[0]} {s:+g}: {name} {v:.2f}, id {d:.2f}", to_pil(frame))
                     for s, v, d, frame in zip(strengths, score, drift, frames, strict=True)])
    panel(rows, out / f"mobilestylegan_{name}.jpg", TILE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=ROOT / "runs" / "figures",
                        help="folder of the figure (default: runs/figures; docs replaces the committed one)")
    sub = parser.add_subparsers(dest="figure", required=True)
    s = sub.add_parser("samples", parents=[common])
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    s.add_argument("--psi", type=float, default=0.7)
    r = sub.add_parser("reconstruction", parents=[common])
    r.add_argument("run", type=Path, help="the --run folder of benchmarks/real_face_inversion.py")
    a = sub.add_parser("attribute", parents=[common])
    a.add_argument("name", choices=sorted(ATTRIBUTE_SCORES), help="the face-api score to caption with")
    a.add_argument("strips", type=Path, nargs="+", help="strips written by embed edit attribute")
    args = parser.parse_args()
    if args.figure == "samples":
        samples(args.seeds, args.psi, args.out)
    elif args.figure == "reconstruction":
        reconstruction(args.run, args.out)
    else:
        attribute(args.name, args.strips, args.out)


if __name__ == "__main__":
    main()
