"""Training a StyleGAN2 with ``embed train``: a tiny run end to end, resuming it, the EMA and R1."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

from embedding import load_discriminator, load_generator
from embedding.commands.train import TrainCLI
from embedding.training import StyleGAN2Training
from tests.photos import photos as fixture_photos

R = 16
TINY = dict(resolution=R, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32)


def photos(n: int) -> list[str]:
    """The first ``n`` committed test photos as strings."""
    return [str(p) for p in fixture_photos(n)]


class Record:
    """What the module saw at the start of each fit and after each batch."""

    def __init__(self) -> None:
        self.starts: list[dict] = []
        self.metrics: list[dict[str, float]] = []


@pytest.fixture
def record(monkeypatch: pytest.MonkeyPatch) -> Record:
    """Hooks on ``StyleGAN2Training`` that fill a ``Record`` while ``embed train`` runs."""
    rec = Record()

    def on_train_start(module: StyleGAN2Training) -> None:
        rec.starts.append(dict(global_step=module.trainer.global_step, images_seen=int(module.images_seen),
                               generator={k: v.clone() for k, v in module.generator.state_dict().items()}))

    def on_train_batch_end(module: StyleGAN2Training, *args) -> None:
        rec.metrics.append({k: float(v) for k, v in module.trainer.callback_metrics.items()})

    monkeypatch.setattr(StyleGAN2Training, "on_train_start", on_train_start, raising=False)
    monkeypatch.setattr(StyleGAN2Training, "on_train_batch_end", on_train_batch_end, raising=False)
    monkeypatch.setattr(sys, "argv", ["embed-train"])
    return rec


def embed_train(root: Path, max_steps: int, *extra: str) -> TrainCLI:
    """``embed-train fit`` on 8 photos at 16² with a tiny network."""
    model = [f"--model.{k}={v}" for k, v in TINY.items()]
    return TrainCLI(args=[
        "fit", *model, "--model.r1_every=2",
        f"--data.images={json.dumps(photos(8))}", f"--data.resolution={R}", "--data.batch_size=4",
        f"--trainer.max_steps={max_steps}", f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--samples.every_n_steps=2", "--samples.count=8", "--export.every_n_steps=2", *extra])


def test_tiny_training_run_exports_working_networks(tmp_path: Path, record: Record) -> None:
    cli = embed_train(tmp_path, 6, "--checkpoint.every_n_train_steps=4")

    # max_steps counts optimiser steps: 6 = three iterations of (D step, G step).
    assert cli.trainer.global_step == 6 and int(cli.model.images_seen) == 12
    assert len(record.metrics) == 3
    for metrics in record.metrics:
        assert {"loss/d", "loss/g"} <= metrics.keys()
        assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert "loss/r1" in record.metrics[0]  # lazy R1 ran on the first iteration
    assert [m["kimg"] for m in record.metrics] == pytest.approx([0.004, 0.008, 0.012])

    export = tmp_path / "export"
    g = load_generator(export / "generator.pt")
    assert json.loads((export / "generator.json").read_text())["metadata"] == {"images_seen": 12, "steps": 3}
    images = g(torch.randn(2, g.z_dim))
    assert images.shape == (2, 3, R, R) and torch.isfinite(images).all()
    d = load_discriminator(export / "discriminator.pt")
    assert d(images).shape == (2, 1)

    initial = record.starts[0]["generator"]
    moved = max((p - initial[k]).abs().max() for k, p in g.named_parameters())
    assert moved > 1e-3  # the exported generator was trained
    pairs = zip(cli.model.g_ema.parameters(), cli.model.generator.parameters(), strict=True)
    assert any(not torch.equal(e, p) for e, p in pairs)  # g_ema trails the generator

    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["0000002.png"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last.ckpt", "step=4.ckpt"]


def test_resume_continues_from_the_last_checkpoint(tmp_path: Path, record: Record) -> None:
    first = embed_train(tmp_path, 4)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    trained = {k: v.clone() for k, v in first.model.generator.state_dict().items()}

    resumed = embed_train(tmp_path, 8, "--ckpt_path=last")
    start = record.starts[1]
    assert start["global_step"] == 4 and start["images_seen"] == 8
    assert all(torch.equal(start["generator"][k], v) for k, v in trained.items())
    assert resumed.trainer.global_step == 8 and int(resumed.model.images_seen) == 16
    assert len(record.metrics) == 2 + 2  # two iterations in each run
    card = json.loads((tmp_path / "export" / "generator.json").read_text())["metadata"]
    assert card == {"images_seen": 16, "steps": 4}


def test_ema_moves_by_the_half_life_fraction() -> None:
    torch.manual_seed(0)
    module = StyleGAN2Training(**TINY, ema_kimg=0.004, ema_rampup=None)  # half-life: 4 images
    before = [p.clone() for p in module.g_ema.parameters()]
    with torch.no_grad():
        for p in module.generator.parameters():
            p.add_(1.0)
        module.generator.mapping.w_avg.fill_(3.0)
    module.update_ema(4)  # one half-life: g_ema moves half way
    for old, new in zip(before, module.g_ema.parameters(), strict=True):
        torch.testing.assert_close(new, old + 0.5)
    module.update_ema(8)  # two half-lives: three quarters of the remaining 0.5
    for old, new in zip(before, module.g_ema.parameters(), strict=True):
        torch.testing.assert_close(new, old + 0.5 + 0.5 * 0.75)
    assert (module.g_ema.mapping.w_avg == 3.0).all()  # buffers are copied, not averaged


def test_r1_penalty_is_the_squared_gradient_norm_of_d() -> None:
    torch.manual_seed(0)
    module = StyleGAN2Training(**TINY, augment=[])
    real = torch.rand(4, 3, R, R) * 2 - 1
    r1 = module.r1_penalty(real)

    x = real.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(module.discriminator(x).sum(), x)
    expected = grad.pow(2).flatten(1).sum(1).mean()
    torch.testing.assert_close(r1, expected)
    assert r1 > 0
    r1.backward()  # the penalty trains D: it has gradients with respect to D's weights
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.discriminator.parameters())
