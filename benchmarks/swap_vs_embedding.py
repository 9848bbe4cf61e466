"""Embedding by one forward pass (Swapping Autoencoder) next to W+ & noise optimisation, on the same photos.

Takes ``--count`` CelebA photos that neither the default generator nor the shipped autoencoder
saw in training (their held-out 5 %, chosen by a hash of the file name), crops the face square
both were trained on, and reports reconstruction PSNR/SSIM and seconds per photo of:

- the Swapping Autoencoder: encode + decode, all photos as one batch;
- Image2StyleGAN++ W+ then noise optimisation (``recipes/reconstruct.yaml``), ``--steps`` each
  phase, through ``embed fit`` (its wall time divided by the number of photos).

    python benchmarks/swap_vs_embedding.py --images ../shared/data/celeba_6k/img --count 16
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
import time
from pathlib import Path

import torch

from datamodules.training import is_held_out
from embedding.commands import main as embed
from embedding.images import read_image, resolve_images
from embedding.methods.swapping.codes import load_autoencoder
from embedding.metrics import lpips_metric, psnr, ssim

ROOT = Path(__file__).resolve().parents[1]
FACE_BOX = [25, 57, 153, 185]  # the face square of CelebA's aligned 178×218 photos, as both models were trained


def held_out(images: str, count: int) -> list[Path]:
    found, _ = resolve_images(images)
    chosen = [p for p in found if is_held_out(p, 0.05)][:count]
    if len(chosen) < count:
        raise SystemExit(f"only {len(chosen)} held-out photos in {images}")
    return chosen


def autoencoder_row(paths: list[Path], source: str) -> dict:
    ae, _ = load_autoencoder(source)
    photos = torch.stack([read_image(p, ae.resolution, FACE_BOX)[0] for p in paths])
    with torch.no_grad():
        ae(photos[:2])  # warm-up
        start = time.perf_counter()
        recon = ae(photos).clamp(-1, 1)
        seconds = time.perf_counter() - start
    return {"method": "Swapping Autoencoder (encode + decode)", "psnr": float(psnr(recon, photos).mean()),
            "ssim": float(ssim(recon, photos).mean()), "lpips": float(lpips_metric(recon, photos).mean()),
            "seconds": seconds / len(paths)}


def embedding_row(paths: list[Path], steps: int, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        embed(["fit", "--config", str(ROOT / "recipes" / "reconstruct.yaml"), "--data.images",
               f"[{', '.join(map(str, paths))}]", "--data.crop", str(FACE_BOX), "--data.batch_size", str(batch),
               "--model.steps", f"{{WI: {steps}, Mkn: {steps}}}", "--trainer.default_root_dir", root,
               "--trainer.enable_progress_bar", "false"])
        seconds = time.perf_counter() - start
        with open(Path(root) / "metrics.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["phase"] == "Mkn"]
    return {"method": f"W+ & noise optimisation ({steps} + {steps} steps)",
            "psnr": sum(float(r["psnr"]) for r in rows) / len(rows),
            "ssim": sum(float(r["ssim"]) for r in rows) / len(rows),
            "lpips": sum(float(r["lpips"]) for r in rows) / len(rows), "seconds": seconds / len(paths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, help="CelebA's aligned photos (e.g. ../shared/data/celeba_6k/img)")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--steps", type=int, default=200, help="steps of each optimisation phase")
    parser.add_argument("--batch", type=int, default=8, help="photos optimised together")
    parser.add_argument("--autoencoder", default="default")
    args = parser.parse_args()
    logging.disable(logging.INFO)
    paths = held_out(args.images, args.count)
    rows = [autoencoder_row(paths, args.autoencoder), embedding_row(paths, args.steps, args.batch)]
    print(f"{len(paths)} held-out CelebA photos, 64², {torch.get_num_threads()} CPU threads")
    print("| method | PSNR dB | SSIM | LPIPS | s / photo |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['lpips']:.3f} | {r['seconds']:.4f} |")
    print(f"one forward pass is {rows[1]['seconds'] / rows[0]['seconds']:.0f}× faster per photo")


if __name__ == "__main__":
    main()
