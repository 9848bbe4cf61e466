"""The encoder into W+: trained on generator samples and photos, exported, and starting an embedding."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch

from datamodules.images import read_image
from embedding.checkpoints import load_generator, save_discriminator
from embedding.cli import main as embed
from embedding.encoder import load_encoder
from embedding.latents import Latents
from embedding.train_cli import TrainCLI
from tests.photos import PHOTOS, photos

ROOT = Path(__file__).resolve().parents[1]


def test_an_encoder_learns_codes_exports_and_starts_a_hybrid_embedding(tiny_generator_file, tiny_discriminator,
                                                                       tmp_path):
    d = save_discriminator(tiny_discriminator, tmp_path / "d.pt")
    cli = TrainCLI(args=["fit", "--config", str(ROOT / "recipes" / "train_encoder.yaml"),
                         "--model.generator", str(tiny_generator_file), "--model.discriminator", str(d),
                         "--model.lr", "3e-3", "--data.images", str(PHOTOS), "--data.resolution", "32",
                         "--data.crop", "null", "--data.batch_size", "8", "--data.holdout_fraction", "0",
                         "--trainer.max_steps", "40", "--trainer.default_root_dir", str(tmp_path / "train"),
                         "--trainer.enable_progress_bar", "false", "--trainer.logger", "false",
                         "--export.every_n_steps", "1000"])
    assert all(math.isfinite(float(v)) for k, v in cli.trainer.callback_metrics.items() if k.startswith("loss/"))
    encoder = load_encoder(tmp_path / "train" / "export" / "encoder.pt")
    g = load_generator(tiny_generator_file)
    with torch.no_grad():
        ws = g.mapping(torch.randn(64, g.z_dim, generator=torch.Generator().manual_seed(5)), None,
                       truncation_psi=0.8)
        samples = g.synthesis(ws, noise_mode="const")
        encoded = encoder(samples)
    assert encoded.shape == ws.shape
    error, baseline = (encoded - ws).square().mean(), (g.w_avg - ws).square().mean()
    assert error < 0.8 * baseline, (float(error), float(baseline))

    images = tmp_path / "photos"
    images.mkdir()
    shutil.copy(photos(1)[0], images)
    embed(["fit", "--config", str(ROOT / "recipes" / "reconstruct.yaml"), "--model.generator",
           str(tiny_generator_file), "--model.vgg_weights", "random", "--model.w_init", "encoder",
           "--model.encoder", str(tmp_path / "train" / "export" / "encoder.pt"), "--model.steps", "{WI: 1}",
           "--model.phases", "[{name: WI, steps: 1, lr: 1e-9, mse1: 1e-5}]", "--data.images", str(images),
           "--trainer.default_root_dir", str(tmp_path / "fit"), "--trainer.enable_progress_bar", "false"])
    photo = read_image(photos(1)[0], 32)[0]
    with torch.no_grad():
        start = encoder(photo[None])[0]
    fitted = Latents.load(tmp_path / "fit" / "latents" / f"{photos(1)[0].stem}.pt").w_plus
    torch.testing.assert_close(fitted, start, atol=1e-4, rtol=0)   # one step of lr 1e-9: the encoder's code
