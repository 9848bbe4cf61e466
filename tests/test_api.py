"""The Python API: ``embedding.fit`` runs a recipe or a method like ``embed fit`` and says what became of each photo."""

from __future__ import annotations

import pytest

import embedding
from embedding.files import sha256
from embedding.latents import render_latents
from embedding.methods.image2stylegan import EmbeddingModule
from tests.photos import photos
from tests.robust_run import RECIPE


def test_fit_a_recipe_then_a_method_into_their_run_folders(tiny_generator_file, tmp_path):
    images = photos(2)
    run = embedding.fit(RECIPE, images, tmp_path / "recipe", trainer={"enable_progress_bar": False},
                        model={"generator": str(tiny_generator_file), "vgg_weights": "random",
                               "steps": {"WI": 3, "Mkn": 2}})
    assert run.finished == [p.stem for p in images] and run.skipped == [] and run.failures == []
    assert {(r["image"], r["phase"]) for r in run.metrics()} == {(p.stem, ph) for p in images for ph in ("WI", "Mkn")}
    record = run.latents(images[0].stem)
    assert torch_close(record.render(), render_latents(run.folder.latents_path(images[0].stem)))
    # a method with its own defaults, here with the perceptual term left out
    again = embedding.fit(EmbeddingModule, images[:1], tmp_path / "method", trainer={"enable_progress_bar": False},
                          model={"generator": str(tiny_generator_file), "perceptual": "vgg16-random",
                                 "steps": {"WI": 2, "Mkn": 1}})
    assert again.finished == [images[0].stem]


def test_a_generator_named_from_the_home_folder(tiny_generator_file, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tiny_generator_file.parent))
    run = embedding.fit(RECIPE, photos(1), tmp_path / "run", trainer={"enable_progress_bar": False},
                        model={"generator": f"~/{tiny_generator_file.name}", "vgg_weights": "random",
                               "steps": {"WI": 2, "Mkn": 1}})
    record = run.latents(photos(1)[0].stem)
    assert record.source == f"~/{tiny_generator_file.name}"
    assert record.metadata["generator_sha256"] == sha256(tiny_generator_file)
    record.render()  # the recorded generator is found again, and its hash checked


def test_no_usable_photo_is_an_error_naming_it(tiny_generator_file, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"no input could be used:\n  .*broken\.jpg"):
        embedding.fit(RECIPE, broken, tmp_path / "run",
                      model={"generator": str(tiny_generator_file), "vgg_weights": "random"})


def torch_close(a, b) -> bool:
    return bool((a - b).abs().max() < 1e-6)
