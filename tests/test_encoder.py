"""The encoder into W+: trained on generator samples and photos, exported, and starting an embedding."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from embedding.checkpoints import load_generator, save_discriminator
from embedding.commands import main as embed
from embedding.commands.train import TrainCLI
from embedding.images import read_image
from embedding.latents import Latents
from embedding.methods.encoder import load_encoder
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


def test_the_shipped_encoder_starts_closer_to_each_photo_than_the_mean_code():
    from embedding.metrics import psnr
    from tests.photos import FACE_BOX

    encoder, g = load_encoder("default"), load_generator("default")
    assert (encoder.resolution, encoder.num_ws, encoder.w_dim) == (g.resolution, g.num_ws, g.w_dim)
    targets = torch.stack([read_image(p, g.resolution, FACE_BOX)[0] for p in photos(6)])
    with torch.no_grad():
        encoded = g.synthesis(encoder(targets), noise_mode="const")
        mean = g.synthesis(g.w_avg.expand(len(targets), g.num_ws, -1), noise_mode="const")
    gain = psnr(encoded.clamp(-1, 1), targets) - psnr(mean.clamp(-1, 1), targets)
    assert bool((gain > 2.0).all()), gain


def test_w_init_encoder_takes_the_shipped_encoder_only_for_the_default_generator(tiny_generator_file):
    from embedding.methods.image2stylegan.module import EmbeddingModule
    from embedding.methods.image2stylegan.phases import Phase

    phases = [Phase(name="WI", steps=1, mse1=1e-5)]
    module = EmbeddingModule(phases=phases, w_init="encoder")
    assert module.encoder is not None and module.encoder.w_dim == module.generator.w_dim
    with pytest.raises(ValueError, match="needs `encoder`, an encoder file trained for this generator"):
        EmbeddingModule(generator=str(tiny_generator_file), phases=phases, w_init="encoder")
    with pytest.raises(ValueError, match="only read with w_init 'encoder'"):
        EmbeddingModule(phases=phases, encoder="default")


def test_embed_encode_writes_latents_that_render_their_image_and_edit_like_fits(tmp_path, caplog):
    import csv

    from embedding.metrics import psnr
    from tests.photos import FACE_BOX

    images = tmp_path / "photos"
    images.mkdir()
    for p in photos(3):
        shutil.copy(p, images)
    (images / "broken.jpg").write_bytes(photos(1)[0].read_bytes()[:200])
    out = tmp_path / "encoded"
    embed(["encode", str(images), "--crop", str(FACE_BOX), "--out", str(out)])
    assert "broken.jpg" in caplog.text
    stems = [p.stem for p in photos(3)]
    assert sorted(p.stem for p in (out / "latents").glob("*.pt")) == stems
    with open(out / "metrics.csv", newline="") as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == stems and {r["phase"] for r in rows.values()} == {"encoder"}
    encoder = load_encoder("default")
    for stem, path in zip(stems, photos(3), strict=True):
        record = Latents.load(out / "latents" / f"{stem}.pt")
        assert record.metadata["method"] == "encoder" and record.metadata["generator"] == "default"
        target = read_image(path, 64, FACE_BOX)[0][None]
        with torch.no_grad():
            torch.testing.assert_close(record.w_plus, encoder(target)[0])
        render = record.render()
        saved = read_image(out / "images" / f"{stem}.png", 64)[0][None]
        assert (render.clamp(-1, 1) - saved).abs().max() < 2 / 255 + 1e-6, "the saved image is the code's render"
        assert abs(psnr(render.clamp(-1, 1), target).item() - float(rows[stem]["psnr"])) < 1e-3

    embed(["edit", "attribute", str(out / "latents" / f"{stems[0]}.pt"), str(_random_direction(tmp_path)),
           "--strengths", "[0, 3]", "--out", str(tmp_path / "edit")])
    frames = sorted((tmp_path / "edit" / f"{stems[0]}.random").glob("*.pt"))
    assert [p.stem for p in frames] == ["0", "3"]
    fitted = Latents.load(out / "latents" / f"{stems[0]}.pt")
    torch.testing.assert_close(Latents.load(frames[0]).render(), fitted.render())
    assert (Latents.load(frames[1]).render() - fitted.render()).abs().mean() > 0.01, "strength 3 moves the image"


def test_embed_encode_refuses_an_encoder_for_another_generator(tiny_generator_file, tmp_path):
    with pytest.raises(ValueError, match="the generator .* takes"):
        embed(["encode", str(photos(1)[0]), "--generator", str(tiny_generator_file), "--out", str(tmp_path)])


def _random_direction(folder: Path) -> Path:
    from embedding.edits.directions import Direction

    g = load_generator("default")
    direction = Direction(torch.randn(g.w_dim, generator=torch.Generator().manual_seed(0)), None, {"how": "test"})
    path = folder / "random.pt"
    direction.save(path)
    return path
