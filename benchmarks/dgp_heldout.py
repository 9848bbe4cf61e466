"""DGP against plain W+ embedding (generator fixed) on held-out CelebA photos: inpainting, ×4 SR, colorization.

For each task, the DGP recipe runs twice on the same photos with the same stages, steps, loss and
initialisation: once fine-tuning the generator (DGP), once with ``--model.finetune_generator false``
(W+ only). The table gives the mean PSNR/SSIM of the final results against the clean photos, and
for inpainting the PSNR inside the hole.

    python benchmarks/dgp_heldout.py --count 8 --stage-steps 60

Extra arguments after ``--`` go to every ``embed fit`` (e.g. ``-- --model.init_candidates 200``).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

from reconstruct_heldout import FACE_BOX, held_out_photos

import embedding

ROOT = Path(__file__).resolve().parents[1]
TASKS = {"inpaint": "dgp_inpaint.yaml", "sr4": "dgp_super_resolve.yaml", "colorize": "dgp_colorize.yaml"}
METHODS = {"DGP": [], "W+ (G fixed)": ["--model.finetune_generator", "false"]}


def final_rows(metrics_csv: Path) -> list[dict]:
    """The rows of each image's last stage."""
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    last = max(int(r["step"]) for r in rows)
    return [r for r in rows if int(r["step"]) == last]


def run(task: str, method: str, photos: list[Path], stage_steps: int, root: Path, extra: list[str]) -> dict:
    """One fit of ``task`` with ``method``; the mean final metrics and the time it took."""
    stages = ", ".join(f"s{i}: {stage_steps}" for i in range(1, 6))
    start = time.monotonic()
    embedding.fit(ROOT / "recipes" / TASKS[task], photos, root, arguments=[*METHODS[method], *extra],
                  model={"steps": f"{{{stages}}}"}, data={"crop": FACE_BOX, "batch_size": len(photos)},
                  trainer={"enable_progress_bar": False})
    rows = final_rows(root / "metrics.csv")
    out = {key: statistics.mean(float(r[key]) for r in rows) for key in ("psnr", "ssim", "lpips")}
    if rows[0]["psnr_masked"]:
        out["hole"] = statistics.mean(float(r["psnr_masked"]) for r in rows)
    out["seconds"] = time.monotonic() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--holdout-fraction", type=float, default=0.05)
    parser.add_argument("--stage-steps", type=int, default=60, help="steps of each of the 5 stages")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--run", default=None, help="folder for the run folders (default: a temporary one)")
    parser.add_argument("embed_args", nargs="*", help="extra `embed fit` arguments (after --)")
    args = parser.parse_args()
    photos = held_out_photos(args.count, args.holdout_fraction)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.run) if args.run else Path(tmp)
        for task in args.tasks:
            for method in METHODS:
                folder = base / f"{task}-{method.split()[0].replace('+', 'plus')}"
                results[task, method] = run(task, method, photos, args.stage_steps, folder, args.embed_args)
    print(f"\n{len(photos)} held-out CelebA photos, 64² default generator, 5 stages × {args.stage_steps} steps")
    print(f"{'task':<9} {'method':<13} {'PSNR dB':>8} {'SSIM':>7} {'LPIPS':>6} {'hole PSNR':>10} {'time s':>7}")
    for (task, method), r in results.items():
        hole = f"{r['hole']:.2f}" if "hole" in r else "-"
        print(f"{task:<9} {method:<13} {r['psnr']:>8.2f} {r['ssim']:>7.4f} {r['lpips']:>6.3f} {hole:>10} "
              f"{r['seconds']:>7.0f}")


if __name__ == "__main__":
    main()
