"""Deep Generative Prior: degradations against direct computations, per-image weights, stages, results, CLI."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import embedding
from embedding.checkpoints import save_discriminator
from embedding.commands import main as embed
from embedding.degradations import (
    LUMA_601,
    Downsample,
    colorize,
    grayscale,
    lab_to_rgb,
    lightness,
    parse_degradations,
    resize_lanczos,
    rgb_to_lab,
)
from embedding.latents import Latents, render_latents
from embedding.methods.dgp import DGPModule, Stage
from tests.photos import PHOTOS

ROOT = Path(__file__).resolve().parents[1]
STEMS = ["000002", "000058", "000086"]

# ---- degradations ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(8, 8), (13, 21), (64, 40)])
def test_lanczos_resize_matches_pil(size):
    plane = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    expected = np.array(Image.fromarray(plane, mode="F").resize((size[1], size[0]), Image.Resampling.LANCZOS))
    got = resize_lanczos(torch.from_numpy(plane)[None, None].double(), size)[0, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_downsample_by_four_matches_pil_on_rgb():
    rgb = np.random.default_rng(1).random((64, 64, 3)).astype(np.float32)
    expected = np.stack([np.array(Image.fromarray(rgb[..., c], mode="F").resize((16, 16), Image.Resampling.LANCZOS))
                         for c in range(3)])
    got = Downsample(4)(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_grayscale_is_itu_601_luma():
    x = torch.rand(2, 3, 5, 5) * 2 - 1
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    luma = LUMA_601[0] * r + LUMA_601[1] * g + LUMA_601[2] * b
    assert LUMA_601 == (0.299, 0.587, 0.114)
    for c in range(3):
        torch.testing.assert_close(grayscale(x)[:, c], luma)


def _lab_reference(r: float, g: float, b: float) -> tuple[float, float, float]:
    """CIE Lab of one sRGB colour, written out per pixel from the standard (D65, 2°)."""
    def lin(c):
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    rl, gl, bl = lin(r), lin(g), lin(b)
    x = (0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl) / 0.95047
    y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
    z = (0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_lab_matches_published_values_and_a_per_pixel_reference():
    published = {(1, 0, 0): (53.24, 80.09, 67.20), (0, 1, 0): (87.73, -86.18, 83.18),
                 (0, 0, 1): (32.30, 79.19, -107.86), (1, 1, 1): (100.0, 0.0, 0.0)}
    colours = torch.tensor(list(published), dtype=torch.float64).T.reshape(1, 3, 4, 1)
    lab = rgb_to_lab(colours)[0, :, :, 0].T
    np.testing.assert_allclose(lab.numpy(), np.array(list(published.values())), atol=0.02)
    rgb = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    for i, j in [(0, 0), (2, 3), (5, 5), (4, 1)]:
        np.testing.assert_allclose(lab[0, :, i, j].numpy(), _lab_reference(*rgb[0, :, i, j].tolist()), atol=1e-6)
    torch.testing.assert_close(lab_to_rgb(lab), rgb)


def test_colorization_keeps_the_inputs_lightness_exactly():
    photo, colour = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    gray = grayscale(photo)
    out = colorize(gray, colour)
    assert out.min() >= -1 and out.max() <= 1
    torch.testing.assert_close(lightness(out), lightness(gray), atol=1e-3, rtol=0)


def test_degradation_specs_and_their_errors():
    chain = parse_degradations(["grayscale", {"kind": "mask"}, "downsample:2"])
    assert [p.name for p in chain.parts] == ["grayscale", "mask", "downsample"]
    assert chain.output_size(64) == 32
    assert parse_degradations([{"kind": "downsample", "factor": 4}]).output_size(64) == 16
    with pytest.raises(ValueError, match="unknown degradation 'blur'"):
        parse_degradations(["blur"])
    with pytest.raises(ValueError, match="factor"):
        parse_degradations([{"kind": "downsample", "factor": 0}])


# ---- the module --------------------------------------------------------------------------------


@pytest.fixture
def networks(tiny_generator_file, tiny_discriminator, tmp_path) -> tuple[str, str]:
    d = save_discriminator(tiny_discriminator, tmp_path / "tiny_d.pt")
    return str(tiny_generator_file), str(d)


def make_module(networks, **kwargs) -> DGPModule:
    kwargs = {"degradations": ["grayscale"], "init_candidates": 4,
              "stages": [Stage("a", 3, blocks=1, g_lr=1e-2, w_lr=1e-2), Stage("b", 3, blocks=None, g_lr=1e-2,
                                                                               mse=1.0)], **kwargs}
    return DGPModule(generator=networks[0], discriminator=networks[1], **kwargs)


def make_batch(stems: list[str], seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(len(stems), 3, 32, 32, generator=g) * 2 - 1
    mask = torch.ones(len(stems), 1, 32, 32)
    mask[:, :, 8:24, 8:24] = 0
    return {"stem": stems, "index": torch.arange(len(stems)), "image": images, "mask": mask}


def fit(module: DGPModule, batch: dict, steps: int) -> None:
    """Run ``steps`` optimisation steps the way the module's lifecycle and Lightning would."""
    module.start_group(batch)
    optimizer = None
    for _ in range(steps):
        optimizer = module.switch_phase(batch) or optimizer
        loss, _ = module.per_image_loss(module.render())
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        module.group_step += 1


def test_fitting_image_b_leaves_image_a_weights_untouched(networks):
    batch = make_batch(["a", "b"])
    together = make_module(networks)
    fit(together, batch, 5)
    alone = make_module(networks)
    fit(alone, {k: v[:1] for k, v in batch.items()}, 5)
    for stacked_pair, stacked_one in zip(together.copies.copies, alone.copies.copies, strict=True):
        torch.testing.assert_close(stacked_pair[0], stacked_one[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.latent[0], alone.latent[0], atol=1e-5, rtol=1e-4)
    # and directly: image b's loss has no gradient on image a's copy
    loss, _ = together.per_image_loss(together.render())
    grads = torch.autograd.grad(loss[1], [p for p in together.copies.copies if p.requires_grad])
    assert all(bool(g[0].eq(0).all()) and bool(g[1].ne(0).any()) for g in grads if g[1].abs().sum() > 0)


def test_only_the_blocks_of_the_current_stage_change(networks):
    module = make_module(networks)
    fit(module, make_batch(["a", "b"]), 3)  # stage a: the shallowest block (b4) only
    base = dict(module.generator.synthesis.named_parameters())
    changed = {name.split(".")[0] for name, p in module.copies.named().items()
               if not torch.equal(p[0], base[name]) or not torch.equal(p[1], base[name])}
    assert changed == {"b4"}
    fit_more = make_module(networks)
    fit(fit_more, make_batch(["a", "b"]), 6)  # stage b: every block
    changed = {name.split(".")[0] for name, p in fit_more.copies.named().items()
               if not torch.equal(p[0], base[name])}
    assert changed == set(module.block_names)


def test_colorization_result_keeps_the_inputs_lightness(networks):
    module = make_module(networks)
    batch = make_batch(["a", "b"])
    fit(module, batch, 2)
    torch.testing.assert_close(lightness(module.view(batch).images), lightness(grayscale(batch["image"])),
                               atol=1e-3, rtol=0)


def test_w_space_latent_search_and_bad_latents_file(networks, tmp_path):
    module = make_module(networks, latent_space="w", degradations=["mask"])
    fit(module, make_batch(["a"]), 2)
    w_plus = module.all_rows(module.latent)
    assert module.latent.shape[1] == 1 and torch.equal(w_plus[0, 0], w_plus[0, -1])
    bad = tmp_path / "a.pt"
    torch.save({"w_plus": torch.zeros(3, 7)}, bad)
    module = make_module(networks, w_init="latents", latents=str(bad))
    with pytest.raises(ValueError, match=str(bad)):
        module.start_group(make_batch(["a"]))
    with pytest.raises(ValueError, match="unknown synthesis block"):
        make_module(networks, stages=[Stage("a", 1, blocks=["b1024"])])
    with pytest.raises(ValueError, match="unknown discriminator block"):
        make_module(networks, features=["b7"])


# ---- the command, the run folder, jitter and morph --------------------------------------------


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for stem in STEMS:
        shutil.copy(PHOTOS / f"{stem}.jpg", folder / f"{stem}.jpg")
    return folder


def run_dgp(networks, photos: Path, root: Path, recipe: str, **sections: dict) -> None:
    model = {"generator": networks[0], "discriminator": networks[1], "init_candidates": 8,
             "steps": {"s1": 2, "s2": 2, "s3": 1, "s4": 1, "s5": 2}, **sections.pop("model", {})}
    trainer = {"enable_progress_bar": False, **sections.pop("trainer", {})}
    embedding.fit(ROOT / "recipes" / recipe, photos, root, model=model, data={"batch_size": 2}, trainer=trainer,
                  **sections)


def test_recipe_end_to_end_follows_the_run_folder_contract(networks, photos, tmp_path, tiny_generator):
    root = tmp_path / "run"
    run_dgp(networks, photos, root, "dgp_inpaint.yaml", model={"diff_dtype": "float32"})
    for stem in STEMS:
        record = torch.load(root / "latents" / f"{stem}.pt", weights_only=True)
        assert record["w_plus"].dtype == torch.float32
        assert record["w_plus"].shape == (tiny_generator.num_ws, tiny_generator.w_dim)
        assert record["metadata"]["generator_diff"] == f"generators/{stem}.pt"
        with np.load(root / "latents" / f"{stem}.npz") as npz:
            np.testing.assert_allclose(npz["w"][0], record["w_plus"].numpy())
        assert all((root / "images" / f"{stem}.{s}.png").is_file() for s in ("s1", "s2", "s3", "s4", "s5"))
        # the weight difference re-renders the saved result
        again = render_latents(root / "latents" / f"{stem}.pt")[0].clamp(-1, 1)
        saved = torch.from_numpy(np.array(Image.open(root / "images" / f"{stem}.png"))).permute(2, 0, 1)
        assert (((again + 1) * 127.5).round() - saved.float()).abs().max() <= 1
    with open(root / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(STEMS) * 5
    assert all(r["psnr_masked"] and float(r["psnr"]) > 0 for r in rows)  # inside the hole
    assert list(root.glob("events.out.tfevents*")) and not list(root.rglob("*.tmp"))
    before = {p: p.stat().st_mtime_ns for p in (root / "latents").glob("*.pt")}
    run_dgp(networks, photos, root, "dgp_inpaint.yaml", model={"diff_dtype": "float32"})  # the same recipe again
    assert {p: p.stat().st_mtime_ns for p in (root / "latents").glob("*.pt")} == before
    with open(root / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_colorize_and_super_resolve_recipes_run(networks, photos, tmp_path, tiny_generator):
    run_dgp(networks, photos, tmp_path / "sr", "dgp_super_resolve.yaml", model={"latent_space": "w"},
            checkpoint={"every_n_steps": 3})  # mid-group checkpoints are written (and removed at the end)
    assert not list((tmp_path / "sr" / "resume").glob("*.pt"))
    record = Latents.load(tmp_path / "sr" / "latents" / "000002.pt").check(tiny_generator)
    assert torch.equal(record.w_plus[0], record.w_plus[-1])
    diff = torch.load(tmp_path / "sr" / "generators" / "000002.pt", weights_only=True)
    assert all(t.dtype == torch.float16 for t in diff["pretrained_minus_finetuned"].values())
    run_dgp(networks, photos, tmp_path / "color", "dgp_colorize.yaml", model={"finetune_generator": False})
    assert not (tmp_path / "color" / "generators").exists()
    saved = np.array(Image.open(tmp_path / "color" / "images" / "000086.png"), dtype=np.float32) / 127.5 - 1
    photo = np.array(Image.open(PHOTOS / "000086.jpg").crop((0, 20, 178, 198))  # the centred square
                     .resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float32) / 127.5 - 1
    got = lightness(torch.from_numpy(saved).permute(2, 0, 1)[None])
    want = lightness(grayscale(torch.from_numpy(photo).permute(2, 0, 1)[None]))
    assert (got - want).abs().mean() < 1.0  # 8-bit PNGs; the exact check is above


def test_unknown_degradation_is_a_clear_error(networks, photos, tmp_path, caplog):
    with pytest.raises(SystemExit):
        embed(["fit", "--config", str(ROOT / "recipes" / "dgp_colorize.yaml"), "--model.generator", networks[0],
              "--model.discriminator", networks[1], "--model.degradations", "[sharpen]",
              "--data.images", str(photos), "--trainer.default_root_dir", str(tmp_path / "run")])
    assert "unknown degradation 'sharpen'" in caplog.text


def test_an_interrupted_fit_resumes_from_its_checkpoint_to_the_same_result(networks, photos, tmp_path):
    one = photos / "000002.jpg"
    extra = {"checkpoint": {"every_n_steps": 1, "every_seconds": None}, "model": {"diff_dtype": "float32"}}
    run_dgp(networks, one, tmp_path / "full", "dgp_super_resolve.yaml", **extra)
    run_dgp(networks, one, tmp_path / "cut", "dgp_super_resolve.yaml", **extra, trainer={"max_steps": 3})
    assert list((tmp_path / "cut" / "resume").glob("*.pt"))
    assert not (tmp_path / "cut" / "latents" / "000002.pt").exists()
    run_dgp(networks, one, tmp_path / "cut", "dgp_super_resolve.yaml", **extra)
    for name in ("latents", "generators"):
        a = torch.load(tmp_path / "full" / name / "000002.pt", weights_only=True)
        b = torch.load(tmp_path / "cut" / name / "000002.pt", weights_only=True)
        key = "w_plus" if name == "latents" else "pretrained_minus_finetuned"
        torch.testing.assert_close(a[key], b[key])
    with open(tmp_path / "cut" / "metrics.csv", newline="") as f:
        assert [r["phase"] for r in csv.DictReader(f)] == ["s1", "s2", "s3", "s4", "s5"]


def test_degraded_inputs_low_resolution_photos(networks, photos, tmp_path, tiny_generator, caplog):
    root = tmp_path / "lr"  # the photos are read at the size the method asks for: φ's output, 8²
    run_dgp(networks, photos, root, "dgp_super_resolve.yaml", model={"degraded_inputs": True})
    saved = Image.open(root / "images" / "000002.png")
    assert saved.size == (tiny_generator.resolution, tiny_generator.resolution)
    with open(root / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == len(STEMS) * 5  # φ(result) against the low-resolution input
    with pytest.raises(SystemExit):
        embed(["fit", "--config", str(ROOT / "recipes" / "dgp_super_resolve.yaml"), "--model.generator", networks[0],
              "--model.discriminator", networks[1], "--model.degraded_inputs", "true", "--data.images", str(photos),
              "--data.resolution", str(tiny_generator.resolution), "--trainer.default_root_dir", str(tmp_path / "bad"),
              "--trainer.enable_progress_bar", "false"])
    assert f"set data.resolution to {tiny_generator.resolution // 4}" in caplog.text
