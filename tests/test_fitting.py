"""The fitting contract: a method written in one file fits through ``embed fit`` with everything the base gives."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from embedding.commands import main as embed
from embedding.latents import Latents, render_latents
from tests.photos import photos
from tests.test_latents import assert_reproduces


def toy_recipe(folder: Path, generator: Path, steps: int) -> Path:
    """A recipe for the toy method of ``tests/toy_method.py``, named by its class path."""
    path = folder / f"toy_{steps}.yaml"
    path.write_text(f"model:\n  class_path: tests.toy_method.WCodeFit\n  init_args:\n"
                    f"    generator: {generator}\n    steps: {steps}\n    lr: 0.05\n")
    return path


def fit_toy(generator: Path, images: Path, root: Path, steps: int, *extra: str) -> None:
    embed(["fit", "--config", str(toy_recipe(root.parent, generator, steps)), "--data.images", str(images),
           "--data.batch_size", "2", "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar",
           "false", *extra])


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos(3):
        shutil.copy(path, folder / path.name)
    return folder


def metrics(root: Path) -> dict[str, float]:
    with open(root / "metrics.csv", newline="") as f:
        return {row["image"]: float(row["psnr"]) for row in csv.DictReader(f)}


def test_a_method_in_one_file_fits_through_embed_fit(tiny_generator_file, images, tmp_path):
    root = tmp_path / "toy"
    fit_toy(tiny_generator_file, images, root, 30)
    stems = sorted(p.stem for p in images.iterdir())
    for stem in stems:
        record = Latents.load(root / "latents" / f"{stem}.pt")
        assert record.metadata["method"] == "w-code"
        assert torch.equal(record.w_plus[0], record.w_plus[-1]), "one W code for every layer"
        assert (root / "latents" / f"{stem}.npz").is_file() and (root / "images" / f"{stem}.W.png").is_file()
        assert_reproduces(render_latents(root / "latents" / f"{stem}.pt"), root / "images" / f"{stem}.png")
    fitted = metrics(root)
    assert sorted(fitted) == stems
    fit_toy(tiny_generator_file, images, tmp_path / "one_step", 1)
    barely = metrics(tmp_path / "one_step")
    assert all(fitted[s] > barely[s] + 0.5 for s in stems), (fitted, barely)  # PSNR, dB
    before = {p: p.stat().st_mtime_ns for p in (root / "latents").glob("*.pt")}
    fit_toy(tiny_generator_file, images, root, 30)  # the same recipe again: every image is done
    assert {p: p.stat().st_mtime_ns for p in (root / "latents").glob("*.pt")} == before


def test_the_toy_method_resumes_an_interrupted_group_to_the_uninterrupted_result(tiny_generator_file, images,
                                                                                  tmp_path):
    one = next(images.iterdir())
    every_step = ("--checkpoint.every_n_steps", "1", "--checkpoint.every_seconds", "null")
    fit_toy(tiny_generator_file, one, tmp_path / "whole", 6)
    cut = tmp_path / "cut"
    fit_toy(tiny_generator_file, one, cut, 6, *every_step, "--trainer.max_steps", "4")
    assert list((cut / "resume").glob("*.pt")) and not (cut / "latents" / f"{one.stem}.pt").exists()
    fit_toy(tiny_generator_file, one, cut, 6, *every_step)
    whole = Latents.load(tmp_path / "whole" / "latents" / f"{one.stem}.pt")
    torch.testing.assert_close(Latents.load(cut / "latents" / f"{one.stem}.pt").w_plus, whole.w_plus)
    assert not list((cut / "resume").glob("*.pt"))

