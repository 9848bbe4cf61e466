"""Seconds per optimisation step of whole ``embed fit`` runs, Lightning loop and callbacks included.

Each method runs its recipe twice on the example photos with the embedded default generator,
once with ``--short`` and once with ``--long`` steps per phase; the difference in wall time
divided by the difference in steps is the cost of one step, with loading, setup, the DGP
initial search and result writing cancelled out. Each pair is repeated ``--repeats`` times and
the median is printed.

    python benchmarks/step_time.py                  # reconstruct (W+ then noise) and DGP colorize
    python benchmarks/step_time.py --repeats 5 --short 10 --long 40
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch

from embedding import fit

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "examples" / "photos"


def recon_args(steps: int) -> tuple[Path, dict]:
    """Image2StyleGAN++ reconstruction, both phases of ``steps`` steps, random VGG (no download)."""
    return ROOT / "recipes" / "reconstruct.yaml", {"vgg_weights": "random", "steps": {"WI": steps, "Mkn": steps}}


def dgp_args(steps: int) -> tuple[Path, dict]:
    """DGP colorization, every stage of ``steps`` steps, a small initial search."""
    return ROOT / "recipes" / "dgp_colorize.yaml", {"init_candidates": 20,
                                                     "steps": {f"s{i}": steps for i in range(1, 6)}}


METHODS = {"reconstruct": (recon_args, 2), "dgp_colorize": (dgp_args, 5)}


def run_seconds(recipe: tuple[Path, dict], images: int) -> float:
    """Wall time of one ``embed fit`` of the first ``images`` example photos, as one group, into a fresh folder."""
    photos = sorted(PHOTOS.glob("*.jpg"))[:images]
    path, model = recipe
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        fit(path, photos, root, model=model, data={"batch_size": images}, images={"every_n_steps": 0},
            trainer={"enable_progress_bar": False, "logger": False})
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--short", type=int, default=10, help="steps per phase of the short run")
    parser.add_argument("--long", type=int, default=30, help="steps per phase of the long run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=2, help="images fitted together (one group)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.set_num_threads(torch.get_num_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, group of {args.images} image(s) at 64²")
    print(f"{'method':<14} {'s/step (median)':>16} {'runs':>40}")
    for name in args.methods:
        make_args, phases = METHODS[name]
        run_seconds(make_args(args.short), args.images)  # warm-up: imports, caches, first allocations
        per_step = []
        for _ in range(args.repeats):
            short = run_seconds(make_args(args.short), args.images)
            long = run_seconds(make_args(args.long), args.images)
            per_step.append((long - short) / ((args.long - args.short) * phases))
        runs = " ".join(f"{s:.4f}" for s in per_step)
        print(f"{name:<14} {statistics.median(per_step):>16.4f} {runs:>40}")


if __name__ == "__main__":
    main()
