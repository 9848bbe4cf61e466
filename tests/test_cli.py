"""``embed fit`` end to end on real photos: the run-folder contract, reruns, bad files, printed recipes."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from embedding import fit
from tests.photos import PHOTOS

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "reconstruct.yaml"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("000002.jpg", "000058.jpg", "000086.jpg"):
        shutil.copy(PHOTOS / name, folder / name)
    return folder


def run_embed(generator: Path, images: Path, root: Path, **sections: dict) -> None:
    model = {"generator": str(generator), "vgg_weights": "random", "steps": {"WI": 6, "Mkn": 4},
             **sections.pop("model", {})}
    fit(RECIPE, images, root, model=model, trainer={"enable_progress_bar": False}, **sections)


def test_fit_writes_the_run_folder_contract(tiny_generator, tiny_generator_file, photos, tmp_path):
    root = tmp_path / "run"
    run_embed(tiny_generator_file, photos, root, data={"batch_size": 2})
    stems = ["000002", "000058", "000086"]
    for stem in stems:
        record = torch.load(root / "latents" / f"{stem}.pt", weights_only=True)
        assert record["w_plus"].dtype == torch.float32
        assert record["w_plus"].shape == (tiny_generator.num_ws, tiny_generator.w_dim)
        assert [tuple(n.shape) for n in record["noise"]] == tiny_generator.synthesis.noise_shapes
        assert record["metadata"]["generator"] == str(tiny_generator_file)
        assert "WI" in record["metadata"]["recipe"]
        assert record["metadata"]["perceptual"] == "vgg16-random (random weights, seed 0)"
        with np.load(root / "latents" / f"{stem}.npz") as npz:
            assert npz["w"].shape == (1, tiny_generator.num_ws, tiny_generator.w_dim)
            np.testing.assert_allclose(npz["w"][0], record["w_plus"].numpy())
        for name in (f"{stem}.png", f"{stem}.WI.png", f"{stem}.Mkn.png"):
            assert (root / "images" / name).is_file()
    with open(root / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["image"], r["phase"]) for r in rows) == sorted((s, p) for s in stems for p in ("WI", "Mkn"))
    assert all(float(r["psnr"]) > 0 and -1 <= float(r["ssim"]) <= 1 for r in rows)
    assert list(root.glob("events.out.tfevents*"))
    assert not list(root.rglob("*.tmp")), "no temporary file may be left behind"


def test_rerun_skips_finished_images(tiny_generator_file, photos, tmp_path):
    root = tmp_path / "run"
    run_embed(tiny_generator_file, photos, root)
    before = {p: p.stat().st_mtime_ns for p in (root / "latents").iterdir()}
    (root / "latents" / "000058.pt").unlink()
    run_embed(tiny_generator_file, photos, root)
    after = {p: p.stat().st_mtime_ns for p in (root / "latents").iterdir()}
    assert after[root / "latents" / "000002.pt"] == before[root / "latents" / "000002.pt"]
    assert after[root / "latents" / "000058.pt"] > before[root / "latents" / "000058.npz"]
    with open(root / "metrics.csv", newline="") as f:
        rows = [(r["image"], r["phase"]) for r in csv.DictReader(f)]
    assert len(rows) == len(set(rows)) == 6, "a refitted image's rows are written once"


def test_metrics_every_n_steps_gives_curves_ending_at_each_phase_end(tiny_generator_file, photos, tmp_path):
    root = tmp_path / "run"
    run_embed(tiny_generator_file, photos, root, metrics={"every_n_steps": 2}, data={"batch_size": 3})
    with open(root / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steps = {(r["phase"], int(r["step"])) for r in rows}
    # WI has 6 steps (rows after its 1st, 2nd, 4th and last), Mkn 4 (group steps 7, 8 and its end, 10)
    assert steps == {("WI", 1), ("WI", 2), ("WI", 4), ("WI", 6), ("Mkn", 7), ("Mkn", 8), ("Mkn", 10)}
    assert len(rows) == 3 * len(steps), "one row per image and measured step"
    plain = tmp_path / "plain"
    run_embed(tiny_generator_file, photos, plain, data={"batch_size": 3})
    with open(plain / "metrics.csv", newline="") as f:
        ends = {(r["image"], r["phase"], r["step"], r["psnr"], r["ssim"]) for r in csv.DictReader(f)}
    assert ends == {(r["image"], r["phase"], r["step"], r["psnr"], r["ssim"]) for r in rows
                    if int(r["step"]) in (6, 10)}, "measuring inside a phase leaves the fit as it was"


def test_corrupt_image_is_reported_and_the_others_finish(tiny_generator_file, photos, tmp_path, caplog):
    (photos / "broken.jpg").write_bytes((PHOTOS / "000002.jpg").read_bytes()[:300])
    (photos / "empty.png").write_bytes(b"")
    root = tmp_path / "run"
    run_embed(tiny_generator_file, photos, root)
    assert sorted(p.name for p in (root / "latents").glob("*.pt")) == ["000002.pt", "000058.pt", "000086.pt"]
    assert "broken.jpg" in caplog.text and "empty.png" in caplog.text


def test_print_config_gives_a_recipe_that_reruns(tiny_generator_file, photos, tmp_path):
    cmd = [sys.executable, "-m", "embedding.commands", "fit", "--config", str(RECIPE), "--model.generator",
           str(tiny_generator_file), "--data.images", str(photos), "--model.steps", "{WI: 3, Mkn: 2}",
           "--print_config"]
    printed = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    model = yaml.safe_load(printed)["model"]
    assert model["class_path"] == "embedding.methods.image2stylegan.EmbeddingModule"  # the recipe names its method
    assert [p["name"] for p in model["init_args"]["phases"]] == ["WI", "Mkn"]
    assert model["init_args"]["phases"][1]["lr"] == 5.0
    assert model["init_args"]["steps"] == {"WI": 3, "Mkn": 2}
    saved = tmp_path / "recipe.yaml"
    saved.write_text(printed)
    root = tmp_path / "rerun"
    fit(saved, photos, root, model={"vgg_weights": "random"}, trainer={"enable_progress_bar": False})
    assert len(list((root / "latents").glob("*.pt"))) == 3


def test_fit_help_leads_with_the_recipes_own_options(capsys):
    from embedding.commands.fit import main

    main(["--config", str(ROOT / "recipes" / "dgp_colorize.yaml"), "--help"])
    short = capsys.readouterr().out
    assert len(short.splitlines()) < 300
    assert "embedding.methods.dgp.DGPModule" in short and "--model.degradations" in short
    assert short.index("--model.generator") < short.index("--trainer.default_root_dir") < short.index("--data.images")
    assert "--trainer.default_root_dir" in short and "--trainer.fast_dev_run" not in short
    with pytest.raises(SystemExit):
        main(["--help-all"])
    assert "--trainer.fast_dev_run" in capsys.readouterr().out
