"""Every Image2StyleGAN++ application recipe, end to end on the tiny generator, and what its masks promise."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import embedding
from embedding.checkpoints import save_generator
from embedding.fitting.run_folder import RunFolder
from embedding.images import read_image
from embedding.masks import dilate
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import Phase, resolve_rows
from tests.conftest import build_generator
from tests.test_engine import fit, make_items, rendered_targets

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

# Quick step counts per recipe: enough for the noise phase to fit the targets on the tiny generator.
QUICK = {
    "crossover": "{Embed: 10, Crossover: 20, Mkn: 60}",
    "inpaint": "{WI: 20, Mkn: 60}",
    "scribble": "{Embed: 10, Scribble: 20, Mkn: 60}",
    "style_transfer": "{Embed: 10, Style: 20, Mkn: 60}",
}


def run_recipe(name: str, generator: Path, root: Path) -> RunFolder:
    """``embed fit --config recipes/<name>.yaml`` on the recipe's own inputs, with the tiny generator."""
    return embedding.fit(RECIPES / f"{name}.yaml", None, root, trainer={"enable_progress_bar": False},
               model={"generator": str(generator), "vgg_weights": "random", "steps": QUICK[name]}).folder


def recipe_phases(name: str) -> list[str]:
    return [p["name"] for p in yaml.safe_load((RECIPES / f"{name}.yaml").read_text())["model"]["phases"]]


def read_png(path: Path) -> torch.Tensor:
    """A written render as ``[3, H, W]`` in [-1, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def metrics(folder: RunFolder) -> list[dict]:
    with open(folder.root / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(autouse=True)
def in_repository(monkeypatch):
    """Recipes name their inputs relative to the repository, as users run them."""
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, RunFolder]:
    """Each application recipe run once with the tiny generator (shared by the tests below)."""
    base = tmp_path_factory.mktemp("applications")
    generator = save_generator(build_generator(), base / "tiny.pt")
    mp = pytest.MonkeyPatch()
    mp.chdir(ROOT)
    try:
        return {name: run_recipe(name, generator, base / name) for name in QUICK}
    finally:
        mp.undo()


@pytest.mark.parametrize("name", sorted(QUICK))
def test_recipe_follows_the_run_folder_contract(runs, name):
    folder = runs[name]
    stems = ["face2_1", "face2_2", "face2_3"] if name == "inpaint" else [p.stem for p in folder.latents.glob("*.pt")]
    assert stems, f"{name} wrote no latents"
    phases = recipe_phases(name)
    for stem in stems:
        record = torch.load(folder.latents_path(stem), weights_only=True)
        assert record["w_plus"].dtype == torch.float32 and record["w_plus"].ndim == 2
        assert (folder.npz_path(stem)).is_file()
        for phase in phases:
            assert folder.image_path(stem, phase).is_file(), f"{stem}: no render after phase {phase}"
        assert folder.image_path(stem).is_file()
    assert sorted((r["image"], r["phase"]) for r in metrics(folder)) == sorted((s, p) for s in stems for p in phases)


def test_crossover_takes_image_1_inside_the_mask_and_image_2_outside(runs):
    folder = runs["crossover"]
    config = yaml.safe_load((RECIPES / "crossover.yaml").read_text())
    box = config["data"].get("crop")
    i1 = read_image(config["data"]["images"], 32, box)[0]
    i2 = read_image(config["data"]["second"], 32, box)[0]
    result = read_png(folder.image_path("face3"))
    inside, outside = result[:, :, :12], result[:, :, 20:]   # left half is the mask (blurred at the seam)
    err = {(where, ref): (part - ref_img[:, :, sl]).abs().mean().item()
           for where, part, sl in (("in", inside, slice(0, 12)), ("out", outside, slice(20, 32)))
           for ref, ref_img in (("i1", i1), ("i2", i2))}
    assert err["in", "i1"] < err["in", "i2"]
    assert err["out", "i2"] < err["out", "i1"]


def recipe_module(name: str, generator: Path, steps: dict[str, int], **kwargs) -> EmbeddingModule:
    """The recipe's model section (phases and settings) with the tiny generator and quick steps."""
    model = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())["model"]
    model.update(generator=str(generator), vgg_weights="random", steps=steps, **kwargs)
    model["phases"] = [Phase(**p) for p in model["phases"]]
    return EmbeddingModule(**model)


def test_inpainting_solutions_differ_in_the_hole_and_agree_outside(tiny_generator, tiny_generator_file, tmp_path):
    images, _, _ = rendered_targets(tiny_generator)
    hole = torch.zeros(1, 32, 32)
    hole[:, 10:22, 10:22] = 1
    items = [{**item, "stem": f"img_{k}"} for k, item in enumerate(make_items(images[:1].repeat(3, 1, 1, 1),
                                                                               hole.expand(3, 1, 32, 32)), 1)]
    module = recipe_module("inpaint", tiny_generator_file, {"WI": 30, "Mkn": 400})
    fit(module, items, tmp_path / "run", batch_size=3)
    renders = torch.stack([read_png(RunFolder(tmp_path / "run").image_path(f"img_{k}")) for k in (1, 2, 3)])
    far = dilate(hole, 3)[0] == 0
    spread = (renders - renders.mean(0, keepdim=True)).abs().mean(dim=(0, 1))
    assert spread[hole[0].bool()].mean() > 0.2, "the solutions must differ in the hole"
    assert spread[far].mean() < spread[hole[0].bool()].mean() / 2.5, "and agree outside it"


@pytest.mark.parametrize(("name", "stem"), [("scribble", "face3"), ("style_transfer", "face2")])
def test_pixels_far_outside_the_edit_stay_close_to_the_base(tmp_path, name, stem):
    """On the recipe's own photo, with the default generator (the tiny one cannot fit a face).

    The base is what the recipe keeps outside the edit: for scribbles the embedding of the photo
    (the scribble phase is pulled toward it, the noise phase fits its render), for style transfer
    the photo itself (both later phases fit it outside the region).
    """
    steps = f"{{Embed: 100, {recipe_phases(name)[1]}: 60, Mkn: 80}}"
    folder = embedding.fit(RECIPES / f"{name}.yaml", None, tmp_path, trainer={"enable_progress_bar": False},
                           model={"vgg_weights": "random", "steps": steps}).folder
    result = read_png(folder.image_path(stem))
    size = result.shape[-1]
    config = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())["data"]
    base = read_png(folder.image_path(stem, "Embed")) if name == "scribble" else \
        read_image(config["images"], size, config.get("crop"))[0]
    if name == "scribble":
        alpha = Image.open(RECIPES / "inputs" / "sunglasses.png").getchannel("A").resize((size, size))
        region = torch.from_numpy(np.asarray(alpha) > 127).float()[None]
    else:
        region = torch.zeros(1, size, size)
        region[:, : int(0.3 * size)] = 1
    far = dilate(region, 4)[0] == 0
    change = (result - base).abs().mean(0)
    assert change[far].mean() < 0.1, "the image outside the edit must stay"
    assert change[region[0].bool()].mean() > 2 * change[far].mean(), "the edit must change its region"


def test_inpainting_row_rule_matches_the_paper_and_scales():
    assert resolve_rows("inpainting", 18) == [*range(9), 16, 17]   # rows 1-9, 17, 18 of 18
    assert resolve_rows("inpainting", 10) == [0, 1, 2, 3, 4, 8, 9]
    assert resolve_rows([0, -1], 10) == [0, 9]
    assert resolve_rows(None, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="outside"):
        resolve_rows([10], 10)
    with pytest.raises(ValueError, match="w_rows"):
        Phase("WI", steps=1, w_rows="middle")


def test_a_phase_using_the_second_image_refuses_to_run_without_one(tiny_generator_file, tmp_path):
    config = yaml.safe_load((RECIPES / "crossover.yaml").read_text())
    with pytest.raises(ValueError, match="second"):
        embedding.fit(RECIPES / "crossover.yaml", config["data"]["images"], tmp_path, data={"second": None},
                      model={"vgg_weights": "random", "generator": str(tiny_generator_file),
                             "steps": QUICK["crossover"]}, trainer={"enable_progress_bar": False})
