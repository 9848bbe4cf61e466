"""Compare perceptual networks on held-out CelebA photos: PSNR/SSIM/LPIPS after the W+ phase and at the end.

Runs ``benchmarks/reconstruct_heldout.py``'s photos (the first ``--count`` of the training
recipe's held-out share, CelebA face square) through ``recipes/reconstruct.yaml`` once per
network, all photos in one group, and prints a Markdown table. ``mse`` is the recipe with the
perceptual weight set to 0 (MSE only). Needs CelebA's aligned photos (``--photos``).

The table's last column is each network's feature scale at work: the perceptual term over the
MSE term (both weighted 1e-5, as in the recipe) at the first step of the W+ phase, from the mean
latent, summed over the photos.

    python benchmarks/perceptual_networks.py --count 16 --steps "{WI: 300, Mkn: 300}"
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml
from reconstruct_heldout import FACE_BOX, PHOTOS, held_out_photos

from embedding.commands.fit import EmbedCLI
from embedding.images import read_image
from embedding.methods.image2stylegan.module import EmbeddingModule

ROOT = Path(__file__).resolve().parents[1]


def recipe_without_percept(folder: Path) -> Path:
    """``reconstruct.yaml`` with every perceptual weight 0: the MSE-only baseline."""
    recipe = yaml.safe_load((ROOT / "recipes" / "reconstruct.yaml").read_text())
    for phase in recipe["model"]["phases"]:
        phase["percept"] = 0.0
    path = folder / "mse.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def start_ratio(network: str, photos: list[Path]) -> float:
    """The perceptual term over the MSE term at the first step of ``reconstruct.yaml``'s W+ phase."""
    module = EmbeddingModule(perceptual=network)
    images = torch.stack([read_image(p, module.generator.resolution, FACE_BOX)[0] for p in photos])
    batch = {"stem": [p.stem for p in photos], "image": images, "mask": torch.ones_like(images[:, :1])}
    module.start_group(batch)
    module.switch_phase(batch)
    with torch.no_grad():
        _, terms = module.per_image_loss(module.render())
    return float(terms["percept"].sum() / terms["mse1"].sum())


def run(network: str, photos: list[Path], steps: str, root: Path, recipe: Path) -> tuple[dict, float, float]:
    """Fit the photos with ``network``: PSNR/SSIM/LPIPS per phase, the wall time and the CPU time (all threads)."""
    args = ["fit", "--config", str(recipe), "--data.images", str([str(p) for p in photos]),
            "--data.crop", str(FACE_BOX), "--data.batch_size", str(len(photos)), "--model.steps", steps,
            "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]
    if network != "mse":
        args += ["--model.perceptual", network]
    start, cpu = time.perf_counter(), time.process_time()
    EmbedCLI(args=args)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    by_phase: dict[str, dict[str, list[float]]] = {}
    with open(root / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            phase = by_phase.setdefault(row["phase"], {"psnr": [], "ssim": [], "lpips": []})
            for key in phase:
                phase[key].append(float(row[key]))
    return by_phase, seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--steps", default="{WI: 300, Mkn: 300}")
    parser.add_argument("--networks", nargs="+", default=["mse", "vgg16", "vgg16-random", "face", "discriminator"])
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    args = parser.parse_args()
    photos = held_out_photos(args.count, 0.05, args.photos)
    print(f"{len(photos)} held-out photos, steps {args.steps}\n")
    print("| perceptual network | W+ PSNR dB | W+ SSIM | W+ LPIPS | final PSNR dB | final SSIM | final LPIPS | wall s "
          "| CPU s | percept : MSE at start |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for network in args.networks:
            recipe = recipe_without_percept(Path(tmp)) if network == "mse" else ROOT / "recipes" / "reconstruct.yaml"
            phases, seconds, cpu = run(network, photos, args.steps, Path(tmp) / network, recipe)
            cells = []
            for phase in ("WI", "Mkn"):
                p, s, lp = (phases[phase][key] for key in ("psnr", "ssim", "lpips"))
                cells += [f"{statistics.mean(p):.2f} ± {statistics.pstdev(p):.2f}", f"{statistics.mean(s):.3f}",
                          f"{statistics.mean(lp):.3f}"]
            ratio = "—" if network == "mse" else f"{start_ratio(network, photos):.1%}"
            print(f"| {network} | {' | '.join(cells)} | {seconds:.0f} | {cpu:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
