"""Reconstruct CelebA photos the default generator never saw, and print PSNR/SSIM after each phase
(and the identity distance and landmark error, with ``-- --metrics.identity true``).

Picks the first ``--count`` photos of the training recipe's held-out share (file-name hash, see
``datamodules.training.is_held_out``), runs ``embed fit`` with the reconstruct recipe on them
(cropped to the training data's face square) and summarises ``metrics.csv``.

    python benchmarks/reconstruct_heldout.py --count 16 --steps "{WI: 1000, Mkn: 500}"

Extra arguments after ``--`` go to ``embed fit`` unchanged (e.g. ``-- --model.vgg_weights random``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from datamodules.training import is_held_out
from embedding import fit

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "celeba_6k" / "img"  # CelebA's aligned photos, not in the repository
FACE_BOX = [25, 57, 153, 185]  # the face square of CelebA's aligned 178×218 photos, as the default generator learned


def held_out_photos(count: int, fraction: float, folder: Path = PHOTOS) -> list[Path]:
    """The first ``count`` photos of the held-out share, by name."""
    return [p for p in sorted(folder.glob("*.jpg")) if is_held_out(p, fraction)][:count]


COLUMNS = ("psnr", "ssim", "lpips", "identity", "landmark_error")


def summarise(metrics_csv: Path) -> None:
    """Mean ± sd of each metric per phase; the face columns when the run measured them."""
    by_phase: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            for key in COLUMNS:
                if row.get(key):
                    by_phase[row["phase"]][key].append(float(row[key]))
    keys = [k for k in COLUMNS if any(k in v for v in by_phase.values())]
    print(f"{'phase':>6} {'images':>6} " + " ".join(f"{k + ' (mean ± sd)':>26}" for k in keys))
    for phase, values in by_phase.items():
        cells = [f"{statistics.mean(values[k]):>17.4f} ± {statistics.pstdev(values[k]):<6.4f}" for k in keys]
        print(f"{phase:>6} {len(values['psnr']):>6} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--holdout-fraction", type=float, default=0.05)
    parser.add_argument("--generator", default="default")
    parser.add_argument("--steps", default="{WI: 5000, Mkn: 3000}")
    parser.add_argument("--run", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("embed_args", nargs="*", help="extra `embed fit` arguments (after --)")
    args = parser.parse_args()
    photos = held_out_photos(args.count, args.holdout_fraction)
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        fit(ROOT / "recipes" / "reconstruct.yaml", photos, run, arguments=args.embed_args,
            model={"generator": args.generator, "steps": args.steps},
            data={"crop": FACE_BOX, "batch_size": args.count}, trainer={"enable_progress_bar": False})
        summarise(run / "metrics.csv")


if __name__ == "__main__":
    main()
