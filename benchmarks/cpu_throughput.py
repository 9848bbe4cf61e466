"""Images per hour of whole ``embed fit`` runs on CPU, by number of processes and group size.

The embedded default generator fits copies of the example faces with the reconstruction recipe
(its perceptual network, callbacks and TensorBoard logging as a user gets them), in one process or
several (``--trainer.devices N --trainer.strategy ddp``, each process taking its own groups), one
group per process. The run logs its loss at every step; the wall times TensorBoard records with
them give the seconds of each step, and the median over a phase's steps its cost, free of
start-up, loading and result writing (and of a hiccup of a shared machine). Scaled to the recipe's
full schedule, per photo: images/hour = processes × group × 3600 / (WI steps × WI s/step + Mkn
steps × Mkn s/step). With several processes the steps are those of process 0, which runs in step
with the others.

    python benchmarks/cpu_throughput.py                    # 1 and 2 processes × groups of 1, 4, 16
    python benchmarks/cpu_throughput.py --processes 1 --groups 4 --steps "{WI: 50, Mkn: 30}"
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "reconstruct.yaml"
EXAMPLES = sorted((ROOT / "examples" / "photos").glob("*.jpg"))


def schedule() -> dict[str, int]:
    """Steps of each phase of the recipe, in order."""
    return {p["name"]: int(p["steps"]) for p in yaml.safe_load(RECIPE.read_text())["model"]["phases"]}


def make_photos(folder: Path, count: int) -> Path:
    """``count`` photos named ``photo000.jpg`` ...: the example faces over and over."""
    folder.mkdir(parents=True)
    for i in range(count):
        shutil.copy(EXAMPLES[i % len(EXAMPLES)], folder / f"photo{i:03d}.jpg")
    return folder


def fit(photos: Path, root: Path, processes: int, group: int, steps: dict[str, int]) -> None:
    """One ``embed fit`` of every photo in ``photos`` into the fresh folder ``root``, the loss logged at every step."""
    spread = ["--trainer.devices", str(processes), "--trainer.strategy", "ddp"] if processes > 1 else []
    command = [sys.executable, "-m", "embedding.commands", "fit", "--config", str(RECIPE), "--data.images", str(photos),
               "--data.batch_size", str(group), "--model.steps", "{" + ", ".join(f"{k}: {v}" for k, v in
                                                                            steps.items()) + "}",
               "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
               "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false", *spread]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"embed fit exited {done.returncode}:\n{done.stderr[-3000:]}")
    if len(list((root / "latents").glob("*.pt"))) != len(list(photos.glob("*.jpg"))):
        raise RuntimeError(f"embed fit did not finish every photo in {root}")


def step_seconds(root: Path, steps: dict[str, int]) -> dict[str, float]:
    """Median seconds of a step of each phase, from the wall times of the loss logged at every step of one group."""
    events = EventAccumulator(str(root), size_guidance={"scalars": 0})
    events.Reload()
    times = [e.wall_time for e in sorted(events.Scalars("loss"), key=lambda e: e.step)]
    if len(times) != sum(steps.values()):
        raise RuntimeError(f"{len(times)} logged steps in {root}, {sum(steps.values())} expected")
    seconds, start = {}, 0
    for phase, count in steps.items():  # step k of the group ends at times[k]; the phase's first step is left out
        seconds[phase] = statistics.median(b - a for a, b in zip(times[start:start + count - 1],
                                                                times[start + 1:start + count], strict=True))
        start += count
    return seconds


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=yaml.safe_load, default={"WI": 30, "Mkn": 20},
                        help="steps of each phase in a run (at least 3 each), e.g. \"{WI: 30, Mkn: 20}\"")
    args = parser.parse_args()
    full = schedule()
    if list(args.steps) != list(full) or min(args.steps.values()) < 3:
        parser.error(f"--steps needs at least 3 steps for each of {list(full)}")
    print(f"embedded default generator, recipes/reconstruct.yaml (full schedule {full}); runs of {args.steps} steps, "
          f"one group per process; {os.cpu_count()} cores; load average {load()} at the start")
    print(f"{'processes':>9} {'group':>5} {'WI s/step':>9} {'Mkn s/step':>10} {'s/image':>8} {'images/hour':>11} "
          f"{'vs 1 process, group 1':>22}")
    base = None
    with tempfile.TemporaryDirectory() as work:
        for processes in args.processes:
            for group in args.groups:
                photos = make_photos(Path(work) / f"photos-{processes}-{group}", processes * group)
                root = Path(work) / f"run-{processes}-{group}"
                fit(photos, root, processes, group, args.steps)
                seconds = step_seconds(root, args.steps)
                per_image = sum(full[phase] * seconds[phase] for phase in full) / (processes * group)
                per_hour = 3600 / per_image
                base = base or per_hour
                print(f"{processes:>9} {group:>5} {seconds['WI']:>9.3f} {seconds['Mkn']:>10.3f} {per_image:>8.1f} "
                      f"{per_hour:>11.1f} {per_hour / base:>21.2f}x", flush=True)
    print(f"load average {load()} at the end; s/image: the full schedule's steps × s/step, over the photos fitted "
          "together by all processes")


if __name__ == "__main__":
    main()
