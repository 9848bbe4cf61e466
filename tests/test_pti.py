"""PTI on the fitting contract: a W pivot, then the photo's own generator, kept local by the regulariser."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import torch

from embedding.checkpoints import load_generator
from embedding.commands import main as embed
from embedding.images import read_image
from embedding.latents import Latents, render_latents
from embedding.methods.pti import PTIModule
from embedding.metrics import lpips
from tests.photos import photos
from tests.test_engine import fit, make_items
from tests.test_latents import assert_reproduces

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "pti.yaml"


def fit_pti(generator: Path, images: Path, root: Path, locality: float) -> None:
    embed(["fit", "--config", str(RECIPE), "--model.generator", str(generator), "--model.perceptual", "vgg16-random",
           "--model.pivot_steps", "12", "--model.tune_steps", "12", "--model.tune_lr", "0.01",
           "--model.locality", str(locality), "--model.diff_dtype", "float32", "--data.images", str(images),
           "--data.batch_size", "2", "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"])


def test_pti_tunes_each_photos_generator_around_its_pivot(tiny_generator_file, tmp_path):
    images = tmp_path / "photos"
    images.mkdir()
    for path in photos(2):
        shutil.copy(path, images / path.name)
    fit_pti(tiny_generator_file, images, tmp_path / "local", locality=1.0)
    fit_pti(tiny_generator_file, images, tmp_path / "free", locality=0.0)
    with open(tmp_path / "local" / "metrics.csv", newline="") as f:
        rows = {(r["image"], r["phase"]): float(r["psnr"]) for r in csv.DictReader(f)}
    stems = sorted(p.stem for p in images.iterdir())
    assert all(rows[(s, "tune")] > rows[(s, "pivot")] for s in stems), rows
    pretrained = load_generator(tiny_generator_file)
    far = pretrained.w_avg + 2.0 * torch.randn(pretrained.w_dim, generator=torch.Generator().manual_seed(3))
    ws = far.expand(1, pretrained.num_ws, -1)
    with torch.no_grad():
        reference = pretrained.synthesis(ws, noise_mode="const")
    drift = {}
    for run in ("local", "free"):
        for stem in stems:
            path = tmp_path / run / "latents" / f"{stem}.pt"
            record = Latents.load(path)
            assert record.metadata["method"] == "pti" and torch.equal(record.w_plus[0], record.w_plus[-1])
            assert (tmp_path / run / "generators" / f"{stem}.pt").is_file()
            assert_reproduces(render_latents(path), tmp_path / run / "images" / f"{stem}.png")
            with torch.no_grad():
                drift[run, stem] = float((record.generator().synthesis(ws, noise_mode="const") - reference)
                                         .square().mean())
    assert all(drift["local", s] < drift["free", s] for s in stems), drift


def test_pti_with_lpips_alone_loads_no_perceptual_network_and_moves_towards_the_photos(tiny_generator_file,
                                                                                         tmp_path):
    module = PTIModule(str(tiny_generator_file), percept=0.0, lpips=0.2, pivot_steps=10, tune_steps=10,
                       pivot_lr=0.05, tune_lr=0.01)
    assert module.perceptual is None
    targets = torch.stack([read_image(p, 32)[0] for p in photos(2)])
    fit(module, make_items(targets), tmp_path, batch_size=2)
    with open(tmp_path / "metrics.csv", newline="") as f:
        tuned = [float(r["lpips"]) for r in csv.DictReader(f) if r["phase"] == "tune"]
    g = load_generator(tiny_generator_file)
    with torch.no_grad():
        start = lpips(g.synthesis(g.w_avg.expand(2, g.num_ws, -1), noise_mode="const"), targets)
    assert all(after < before - 0.02 for after, before in zip(tuned, start.tolist(), strict=True)), (tuned, start)
    assert Latents.load(tmp_path / "latents" / "img0.pt").metadata["perceptual"] is None


def test_locality_alpha_is_the_papers_unless_the_generator_renders_images_only_closer(tiny_generator_file):
    assert PTIModule(str(tiny_generator_file)).locality_alpha() == 30.0
    capped = PTIModule(str(tiny_generator_file))
    capped.generator.code_radius = 1.5
    assert capped.locality_alpha() == 1.5
    chosen = PTIModule(str(tiny_generator_file), locality_alpha=40.0)
    chosen.generator.code_radius = 1.5
    assert chosen.locality_alpha() == 40.0
