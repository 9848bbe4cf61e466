"""Seven ways from a photo back to a code, on the same held-out CelebA photos in one run.

W (PTI's pivot phase alone), W+ (Image2StyleGAN's WI phase), W+ & noise (Image2StyleGAN++,
WI then Mkn), the shipped encoder (one forward pass), hybrid (the encoder's code starts W+ &
noise), PTI (the pivot, then the generator tuned around it) and DGP (W+ and the generator,
progressively, no degradation). Every method runs through ``embed fit`` (the encoder through
``embed encode``) on the same photos as one group, and every result is re-rendered from its
latents file, so each is measured as a user would get it back:

- PSNR, SSIM and the face descriptor's identity distance to the photo;
- seconds per photo (the whole run: loading, fitting or encoding, writing, over the number of photos);
- editability: the change of the face toolkit's attribute score when the code moves
  ``--strength`` along that attribute's linear boundary (InterFaceGAN's, from generator samples),
  and the identity distance between the edit and the unedited result.

The W+ & noise and hybrid runs also log their metrics every ``--curve-every`` steps: the
steps-to-quality curves of the mean start against the encoder's start.

    python benchmarks/inversion_methods.py --count 16 --steps 300 --run runs/inversion --figures docs

``--figures`` writes ``steps_to_quality.png`` (needs matplotlib) and ``attribute_edits.png`` (one
photo, every method, a strip of strengths). A run folder that already holds a method's results
is reused with the time it recorded. Extra arguments after ``--`` go to every ``embed fit``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from reconstruct_heldout import FACE_BOX, held_out_photos

from embedding import load_generator
from embedding.commands.edit import direction_boundary
from embedding.commands.encode import encode
from embedding.commands.fit import EmbedCLI
from embedding.edits.directions import Direction
from embedding.faces.attributes import ATTRIBUTE_SCORES, face_attributes
from embedding.faces.descriptor import identity_distance
from embedding.generators import Generator
from embedding.images import read_image
from embedding.latents import Latents
from embedding.metrics import lpips_metric, psnr, ssim

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"


def fit_args(name: str, steps: int, curve_every: int) -> list[str]:
    """The ``embed fit`` arguments of method ``name`` with ``steps`` steps per phase."""
    reconstruct = ["--config", str(RECIPES / "reconstruct.yaml")]
    curve = ["--metrics.every_n_steps", str(curve_every), "--metrics.identity", "true"]
    stage = max(1, 2 * steps // 5)
    stages = "{" + ", ".join(f"s{i}: {stage}" for i in range(1, 6)) + "}"
    return {
        "W": ["--config", str(RECIPES / "pti.yaml"), "--model.pivot_steps", str(steps), "--model.tune_steps", "0"],
        "W+": [*reconstruct, "--model.steps", f"{{WI: {steps}, Mkn: 0}}"],
        "W+ & noise": [*reconstruct, "--model.steps", f"{{WI: {steps}, Mkn: {steps}}}", *curve],
        "hybrid": [*reconstruct, "--model.steps", f"{{WI: {steps}, Mkn: {steps}}}", "--model.w_init", "encoder",
                   *curve],
        "PTI": ["--config", str(RECIPES / "pti.yaml"), "--model.pivot_steps", str(steps),
                "--model.tune_steps", str(steps)],
        "DGP": ["--config", str(RECIPES / "dgp_super_resolve.yaml"), "--model.degradations", "[]",
                "--model.steps", stages],
    }[name]


METHODS = ["W", "W+", "W+ & noise", "encoder", "hybrid", "PTI", "DGP"]


def folder_name(method: str) -> str:
    return method.replace(" & ", "_").replace("+", "plus")


def run_fit(method: str, photos: list[Path], folder: Path, steps: int, curve_every: int, extra: list[str]) -> float:
    """Fit ``photos`` with ``method`` into ``folder``; the run's wall time (recorded there, reused if done)."""
    timing = folder / "seconds.json"
    if timing.is_file() and all((folder / "latents" / f"{p.stem}.pt").is_file() for p in photos):
        return json.loads(timing.read_text())["seconds"]
    start = time.monotonic()
    EmbedCLI(args=["fit", *fit_args(method, steps, curve_every), "--data.images", json.dumps([str(p) for p in photos]),
                   "--data.crop", str(FACE_BOX), "--data.batch_size", str(len(photos)),
                   "--trainer.default_root_dir", str(folder), "--trainer.enable_progress_bar", "false", *extra])
    seconds = time.monotonic() - start
    timing.write_text(json.dumps({"seconds": seconds}))
    return seconds


def run_encode(photos: list[Path], folder: Path) -> float:
    """``embed encode`` of ``photos`` with the shipped encoder into ``folder``; the run's wall time."""
    start = time.monotonic()
    encode([str(p) for p in photos], crop=tuple(FACE_BOX), batch_size=len(photos), out=str(folder))
    return time.monotonic() - start


def load_results(folder: Path, photos: list[Path]) -> list[Latents]:
    return [Latents.load(folder / "latents" / f"{p.stem}.pt") for p in photos]


@torch.no_grad()
def renders(base: Generator, records: list[Latents], direction: Direction | None = None,
            strength: float = 0.0) -> torch.Tensor:
    """Each record rendered with its own generator (``base`` plus its tuned weights), its code moved first."""
    out = []
    for r in records:
        if direction is not None:
            r = dataclasses.replace(r, w_plus=direction.apply(r.w_plus, strength))
        out.append(r.render(base)[0])
    return torch.stack(out).clamp(-1, 1)


@torch.no_grad()
def measure(base: Generator, records: list[Latents], targets: torch.Tensor, direction: Direction, attribute: str,
            strength: float) -> dict[str, float]:
    """Mean PSNR, SSIM, LPIPS, identity distance of the results; the edit's score change and identity drift."""
    images = renders(base, records)
    edited = renders(base, records, direction, strength)
    score = ATTRIBUTE_SCORES[attribute]
    return {"psnr": psnr(images, targets).mean().item(), "ssim": ssim(images, targets).mean().item(),
            "lpips": lpips_metric(images, targets).mean().item(),
            "identity": identity_distance(images, targets).mean().item(),
            "edit_change": (score(face_attributes(edited)) - score(face_attributes(images))).mean().item(),
            "edit_identity": identity_distance(edited, images).mean().item()}


def boundary(attribute: str, samples: int, path: Path) -> Direction:
    """The attribute's linear boundary for the default generator (made once, kept in the run folder)."""
    if not path.is_file():
        direction_boundary(attribute, samples=samples, out=str(path))
    return Direction.load(path)


def curves(metrics_csv: Path) -> dict[str, dict[int, float]]:
    """Mean PSNR, SSIM and identity over the images at every measured step."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            for key in ("psnr", "ssim", "identity"):
                if row[key]:
                    values[key][int(row["step"])].append(float(row[key]))
    return {k: {s: statistics.mean(v) for s, v in sorted(per.items())} for k, per in values.items()}


def steps_to_reach(curve: dict[int, float], level: float, higher_better: bool = True) -> int | None:
    """The first measured step at which ``curve`` reaches ``level``."""
    for step, value in curve.items():
        if (value >= level) if higher_better else (value <= level):
            return step
    return None


def plot_curves(mean: dict, encoder: dict, phase_end: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"psnr": "PSNR dB", "ssim": "SSIM", "identity": "identity distance (lower is better)"}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key in zip(axes, labels, strict=True):
        for name, data, style in (("mean code start", mean, "-"), ("encoder start (hybrid)", encoder, "--")):
            ax.plot(list(data[key]), list(data[key].values()), style, label=name)
        ax.axvline(phase_end, color="gray", lw=0.8)
        ax.text(phase_end / 2, 1.01, "W+", transform=ax.get_xaxis_transform(), ha="center")
        ax.text(phase_end * 1.5, 1.01, "noise", transform=ax.get_xaxis_transform(), ha="center")
        ax.set_xlabel("optimisation step")
        ax.set_ylabel(labels[key])
        ax.grid(alpha=0.3)
    axes[0].legend(loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def edit_sheet(base: Generator, results: dict[str, list[Latents]], target: torch.Tensor, index: int,
               direction: Direction, strengths: list[float], path: Path, scale: int = 2) -> None:
    """One photo, every method: the photo, then the result moved by each strength (0 is the result itself)."""
    side = target.shape[-1] * scale
    label_w = 90
    sheet = Image.new("RGB", (label_w + side * (len(strengths) + 1), 18 + side * len(results)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, s in enumerate(strengths):
        draw.text((label_w + side * (j + 1) + 4, 3), f"{s:+g}" if s else "result", fill="black")
    draw.text((label_w + 4, 3), "photo", fill="black")

    def tile(image: torch.Tensor) -> Image.Image:
        array = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        return Image.fromarray(array).resize((side, side), Image.Resampling.NEAREST)

    for i, (name, records) in enumerate(results.items()):
        y = 18 + i * side
        draw.text((4, y + side // 2 - 6), name, fill="black")
        sheet.paste(tile(target), (label_w, y))
        for j, s in enumerate(strengths):
            sheet.paste(tile(renders(base, [records[index]], direction, s)[0]), (label_w + side * (j + 1), y))
    sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--holdout-fraction", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=300, help="steps of each phase (DGP: 2/5 of this per stage)")
    parser.add_argument("--curve-every", type=int, default=10, help="metrics interval of the steps-to-quality runs")
    parser.add_argument("--attribute", default="smile", choices=list(ATTRIBUTE_SCORES))
    parser.add_argument("--boundary-samples", type=int, default=1000)
    parser.add_argument("--strength", type=float, default=4.0, help="edit strength (units of the unit normal in W)")
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--run", default="runs/inversion", help="folder for the run folders")
    parser.add_argument("--figures", default=None, help="write the plot and the edit sheet here")
    parser.add_argument("--sheet-photo", type=int, default=0, help="which photo the edit sheet shows")
    parser.add_argument("embed_args", nargs="*", help="extra `embed fit` arguments (after --)")
    args = parser.parse_args()

    photos = held_out_photos(args.count, args.holdout_fraction)
    targets = torch.stack([read_image(p, 64, FACE_BOX)[0] for p in photos])
    base = Path(args.run)
    base.mkdir(parents=True, exist_ok=True)
    direction = boundary(args.attribute, args.boundary_samples, base / f"{args.attribute}.pt")
    results, seconds = {}, {}
    for method in args.methods:
        folder = base / folder_name(method)
        if method == "encoder":
            seconds[method] = run_encode(photos, folder)
        else:
            seconds[method] = run_fit(method, photos, folder, args.steps, args.curve_every, args.embed_args)
        results[method] = load_results(folder, photos)

    base_generator = load_generator("default")
    table = {m: measure(base_generator, r, targets, direction, args.attribute, args.strength)
             for m, r in results.items()}
    print(f"\n{len(photos)} held-out CelebA photos, 64² default generator, {args.steps} steps a phase; "
          f"edit: {args.attribute} boundary × {args.strength:g}")
    print(f"{'method':<11} {'PSNR dB':>8} {'SSIM':>6} {'LPIPS':>6} {'identity':>9} {'s/photo':>8} "
          f"{'Δ ' + args.attribute:>9} {'edit identity':>14}")
    for method, r in table.items():
        print(f"{method:<11} {r['psnr']:>8.2f} {r['ssim']:>6.3f} {r['lpips']:>6.3f} {r['identity']:>9.3f} "
              f"{seconds[method] / len(photos):>8.3f} {r['edit_change']:>+9.3f} {r['edit_identity']:>14.3f}")

    if {"W+ & noise", "hybrid"} <= set(results):
        mean_curve = curves(base / folder_name("W+ & noise") / "metrics.csv")
        enc_curve = curves(base / folder_name("hybrid") / "metrics.csv")
        w_end = mean_curve["psnr"][args.steps]
        print(f"\nthe encoder start reaches the mean start's PSNR at the end of W+ ({w_end:.2f} dB, step "
              f"{args.steps}) at step {steps_to_reach(enc_curve['psnr'], w_end)}")
        print("steps to reach a level, mean start → encoder start:")
        for key, levels, higher in (("psnr", (18, 20, 25, 30), True), ("identity", (0.5, 0.4, 0.3), False)):
            for level in levels:
                a, b = steps_to_reach(mean_curve[key], level, higher), steps_to_reach(enc_curve[key], level, higher)
                print(f"  {key} {'≥' if higher else '≤'} {level:g}: {a} → {b}")
        if args.figures:
            plot_curves(mean_curve, enc_curve, args.steps, Path(args.figures) / "steps_to_quality.png")
    if args.figures:
        strengths = [-2 * args.strength, -args.strength, 0.0, args.strength, 2 * args.strength]
        edit_sheet(base_generator, results, targets[args.sheet_photo], args.sheet_photo, direction, strengths,
                   Path(args.figures) / "attribute_edits.png")


if __name__ == "__main__":
    main()
