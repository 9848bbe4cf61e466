"""Images per hour of whole ``embed fit`` runs on CPU, by number of processes and group size.

The embedded default generator fits ``--photos`` copies of the example faces with the
reconstruction recipe (its perceptual network, callbacks and TensorBoard logging as a user gets
them), one process or several (``--trainer.devices N --trainer.strategy ddp``, each process
taking its own groups). Every configuration runs twice, with two short schedules in the recipe's
proportions (WI : Mkn = 5000 : 3000); the difference in wall time is the cost of the steps in
between, with start-up, loading and result writing cancelled out. Scaled to the recipe's full
schedule, it gives the images per hour a long job reaches.

    python benchmarks/cpu_throughput.py                    # 1 and 2 processes × groups of 1, 4, 16; 32 photos
    python benchmarks/cpu_throughput.py --processes 1 --groups 4 --photos 8 --fractions 0.001 0.004
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "reconstruct.yaml"
EXAMPLES = sorted((ROOT / "examples" / "photos").glob("*.jpg"))


def schedule() -> dict[str, int]:
    """Steps of each phase of the recipe."""
    return {p["name"]: int(p["steps"]) for p in yaml.safe_load(RECIPE.read_text())["model"]["phases"]}


def steps_at(fraction: float) -> dict[str, int]:
    """The recipe's schedule scaled by ``fraction`` (at least one step per phase)."""
    return {name: max(1, round(steps * fraction)) for name, steps in schedule().items()}


def make_photos(folder: Path, count: int) -> Path:
    """``count`` photos named ``photo000.jpg`` ...: the example faces over and over."""
    folder.mkdir(parents=True)
    for i in range(count):
        shutil.copy(EXAMPLES[i % len(EXAMPLES)], folder / f"photo{i:03d}.jpg")
    return folder


def run_seconds(photos: Path, root: Path, processes: int, group: int, steps: dict[str, int]) -> float:
    """Wall time of one ``embed fit`` into the fresh folder ``root``, start-up included."""
    spread = ["--trainer.devices", str(processes), "--trainer.strategy", "ddp"] if processes > 1 else []
    command = [sys.executable, "-m", "embedding.cli", "fit", "--config", str(RECIPE), "--data.images", str(photos),
               "--data.batch_size", str(group), "--model.steps", "{" + ", ".join(f"{k}: {v}" for k, v in
                                                                            steps.items()) + "}",
               "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
               "--trainer.enable_progress_bar", "false", *spread]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"embed fit exited {done.returncode}:\n{done.stderr[-3000:]}")
    if len(list((root / "latents").glob("*.pt"))) != len(list(photos.glob("*.jpg"))):
        raise RuntimeError(f"embed fit did not finish every photo in {root}")
    return seconds


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--photos", type=int, default=32, help="photos per run (enough for every process to "
                                                               "have a group of the largest size)")
    parser.add_argument("--fractions", type=float, nargs=2, default=[0.001, 0.011],
                        help="the two short schedules, as fractions of the recipe's")
    args = parser.parse_args()
    short, long = (steps_at(f) for f in args.fractions)
    full = schedule()
    scale = sum(full.values()) / (sum(long.values()) - sum(short.values()))
    print(f"embedded default generator, {args.photos} photos, recipes/reconstruct.yaml; runs of {short} and {long} "
          f"steps; {os.cpu_count()} cores; load average {load()} at the start")
    print(f"{'processes':>9} {'group':>5} {'short s':>8} {'long s':>8} {'s/image (full schedule)':>24} "
          f"{'images/hour':>11} {'vs 1 process, group 1':>22}")
    base = None
    with tempfile.TemporaryDirectory() as work:
        photos = make_photos(Path(work) / "photos", args.photos)
        for processes in args.processes:
            for group in args.groups:
                times = [run_seconds(photos, Path(work) / f"run-{processes}-{group}-{i}", processes, group, steps)
                         for i, steps in enumerate((short, long))]
                per_image = (times[1] - times[0]) * scale / args.photos
                per_hour = 3600 / per_image
                base = base or per_hour
                print(f"{processes:>9} {group:>5} {times[0]:>8.1f} {times[1]:>8.1f} {per_image:>24.1f} "
                      f"{per_hour:>11.1f} {per_hour / base:>21.2f}x", flush=True)
    print(f"load average {load()} at the end; s/image = (long − short) × {scale:.0f} / photos, the recipe's "
          f"{full} steps, start-up excluded")


if __name__ == "__main__":
    main()
