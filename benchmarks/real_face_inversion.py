"""W, W+, W+ & noise and PTI on real CelebA-HQ photos at 1024² with MobileStyleGAN, in one run.

The photos (CelebA-HQ, StarGAN v2's source set by default) are aligned with ``embed align`` at
1024², the generator's FFHQ alignment, and fitted as one group by two ``embed fit`` runs with
``--model.generator mobilestylegan-ffhq`` and the shipped ImageNet VGG-16:

- ``recipes/reconstruct.yaml``: its W+ phase end is the **W+** row, its noise phase end **W+ & noise**;
- ``recipes/pti.yaml``: its pivot phase end (a W code) is the **W** row, its tuning phase end **PTI**.

Each row is what the run measured at that phase's end (``metrics.csv``): PSNR on [-1, 1] with
peak 4 (the usual definition) and with GANInverter's peak 2 (3.01 dB lower), SSIM, LPIPS (AlexNet,
at 256²) and the identity distance of the face descriptor on the face box FFHQ alignment implies.
Seconds per photo are the phase's fitting time (median step time × steps, from the loss logged at
every step) over the group size, loading excluded. The final results are re-rendered from their
latents files and compared with the images the runs saved.

    embed fetch mobilestylegan-ffhq
    python benchmarks/real_face_inversion.py --count 4 --steps 50 --run runs/real_faces

``--steps`` is the W+ and pivot phases' length; the noise and tuning phases take half of it.
Rerunning continues killed runs and reuses finished ones. Extra arguments after ``--`` go to
both ``embed fit`` runs (``--trainer.accelerator gpu --trainer.precision bf16-mixed``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
CELEBA_HQ = ROOT.parent / "shared" / "data" / "stargan2_celebahq" / "src"  # not in the repository
GENERATOR = "mobilestylegan-ffhq"
PEAK2 = 10 * math.log10(2)  # PSNR with peak 2 instead of 4 on [-1, 1] images


def embed(*args: str) -> None:
    """Run ``embed`` with this interpreter and the repository on the path, failing loudly."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    print("$ embed", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "embedding.commands", *args], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": path})


def photos(folder: Path, count: int) -> list[Path]:
    """The first ``count`` photos, alternating the subfolders (female, male) when there are several."""
    groups = [sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".png"))
              for d in sorted(folder.iterdir()) if d.is_dir()] or [sorted(folder.glob("*.[jp][pn]g"))]
    mixed = [p for row in zip(*groups, strict=False) for p in row]
    if len(mixed) < count:
        raise SystemExit(f"{folder} has {len(mixed)} photos, {count} asked for")
    return mixed[:count]


def align(chosen: list[Path], out: Path) -> list[Path]:
    """``embed align`` of the chosen photos into ``out`` (kept between runs); the aligned files."""
    aligned = [out / f"{p.stem}.png" for p in chosen]
    if not all(p.is_file() for p in aligned):
        staging = out.parent / "photos"
        staging.mkdir(parents=True, exist_ok=True)
        for p in chosen:
            shutil.copy(p, staging / p.name)
        embed("align", *[str(staging / p.name) for p in chosen], "--size", "1024", "--out", str(out),
              "--max-faces", "1")
    missing = [p.name for p in aligned if not p.is_file()]
    if missing:
        raise SystemExit(f"embed align found no face in {', '.join(missing)}")
    return aligned


def fit(recipe: list[str], aligned: list[Path], folder: Path, extra: list[str]) -> None:
    """One ``embed fit`` of the aligned photos as one group; a finished folder is kept, a killed one continued."""
    if all((folder / "latents" / f"{p.stem}.pt").is_file() for p in aligned):
        return
    embed("fit", *recipe, "--model.generator", GENERATOR, "--data.images", json.dumps([str(p) for p in aligned]),
          "--data.batch_size", str(len(aligned)), "--metrics.identity", "true",
          "--trainer.default_root_dir", str(folder), "--trainer.log_every_n_steps", "1",
          "--trainer.enable_progress_bar", "false", *extra)


def phase_rows(folder: Path, phase: str) -> list[dict]:
    """The rows of ``metrics.csv`` at the end of ``phase`` (the last row of each image in it)."""
    with open(folder / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["phase"] == phase]
    last = {r["image"]: r for r in rows}
    return list(last.values())


def phase_seconds(folder: Path, steps: dict[str, int]) -> dict[str, float]:
    """Fitting seconds of each phase for the whole group: its median step time × its steps.

    A step's time is the gap between its logged loss and the previous step's, so the run's first
    step (which also loads and warms up) is not counted.
    """
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    times = {e.step: e.wall_time for e in events.Scalars("loss")}
    ordered = [times[k] for k in sorted(times)]
    if len(ordered) != sum(steps.values()):
        raise RuntimeError(f"{len(ordered)} logged steps in {folder}, {sum(steps.values())} expected")
    gaps = [math.nan, *(b - a for a, b in zip(ordered, ordered[1:], strict=False))]
    seconds, start = {}, 0
    for phase, count in steps.items():
        own = [g for g in gaps[start:start + count] if not math.isnan(g)]
        seconds[phase] = statistics.median(own) * count
        start += count
    return seconds


def rerender_check(folder: Path, aligned: list[Path]) -> float:
    """The largest difference, in 8-bit levels, between each result re-rendered from its latents and its saved image."""
    from embedding.fitting.run_folder import RunFolder
    from embedding.images import to_pil
    from embedding.latents import render_latents

    run, worst = RunFolder(folder), 0
    for p in aligned:
        render = np.asarray(to_pil(render_latents(run.latents_path(p.stem))[0])).astype(int)
        saved = np.asarray(Image.open(run.image_path(p.stem)).convert("RGB")).astype(int)
        worst = max(worst, int(np.abs(render - saved).max()))
    return worst


def mean(rows: list[dict], key: str) -> float:
    return statistics.fmean(float(r[key]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=CELEBA_HQ, help="a folder of photos (subfolders alternate)")
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50, help="W+ and pivot steps; noise and tuning get half")
    parser.add_argument("--run", type=Path, default=Path("runs/real_faces"))
    parser.add_argument("embed_args", nargs="*", help="extra `embed fit` arguments (after --)")
    args = parser.parse_args()

    run = args.run.resolve()
    aligned = align(photos(args.photos, args.count), run / "aligned")
    half = max(1, args.steps // 2)
    plans = {
        "embedding": (["--config", str(ROOT / "recipes" / "reconstruct.yaml"),
                       "--model.steps", f"{{WI: {args.steps}, Mkn: {half}}}"], {"WI": args.steps, "Mkn": half}),
        "pti": (["--config", str(ROOT / "recipes" / "pti.yaml"), "--model.pivot_steps", str(args.steps),
                 "--model.tune_steps", str(half)], {"pivot": args.steps, "tune": half}),
    }
    for name, (recipe, _) in plans.items():
        fit(recipe, aligned, run / name, args.embed_args)

    seconds = {name: phase_seconds(run / name, steps) for name, (_, steps) in plans.items()}
    table = [("W (PTI's pivot)", "pti", "pivot", seconds["pti"]["pivot"]),
             ("W+", "embedding", "WI", seconds["embedding"]["WI"]),
             ("W+ & noise", "embedding", "Mkn", seconds["embedding"]["WI"] + seconds["embedding"]["Mkn"]),
             ("PTI", "pti", "tune", seconds["pti"]["pivot"] + seconds["pti"]["tune"])]
    print(f"\n{len(aligned)} CelebA-HQ photos ({', '.join(p.stem for p in aligned)}), aligned at 1024², "
          f"{GENERATOR}; W+ and pivot {args.steps} steps, noise and tuning {half}")
    print("| method | PSNR dB (peak 4) | PSNR dB (peak 2) | SSIM | LPIPS (Alex, 256²) | identity | s/photo |")
    print("|---|---|---|---|---|---|---|")
    for label, name, phase, total in table:
        rows = phase_rows(run / name, phase)
        psnr = mean(rows, "psnr")
        print(f"| {label} | {psnr:.2f} | {psnr - PEAK2:.2f} | {mean(rows, 'ssim'):.3f} | {mean(rows, 'lpips'):.3f} "
              f"| {mean(rows, 'identity'):.3f} | {total / len(aligned):.0f} |")
    for name in plans:
        print(f"{name}: results re-rendered from their latents differ from the saved images by at most "
              f"{rerender_check(run / name, aligned)} levels")


if __name__ == "__main__":
    main()
