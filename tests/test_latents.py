"""The latents record: round trip, generator checks, and DGP results rendered with their own weights everywhere."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedding.checkpoints import save_discriminator, save_generator
from embedding.files import sha256
from embedding.latents import Latents, render_latents
from embedding.methods.dgp import DGPModule, Stage
from tests.conftest import build_discriminator, build_generator
from tests.test_edits import run_edit
from tests.test_engine import fit, make_items

STEMS = ("a", "b")


def saved_image(path: Path) -> torch.Tensor:
    """A PNG as ``[3, H, W]`` floats in 0..255."""
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.float32)).permute(2, 0, 1)


def assert_reproduces(render: torch.Tensor, png: Path) -> None:
    """``render`` ([3, H, W] or [1, 3, H, W] in [-1, 1]) is the saved PNG up to 8-bit rounding."""
    pixels = (render.reshape(-1, *render.shape[-2:]).clamp(-1, 1) + 1) * 127.5
    assert (pixels - saved_image(png)).abs().max() <= 1, png


def plain_record(generator_file: Path, seed: int = 3) -> Latents:
    """A code as an ordinary W+/noise embedding would leave it (no weights of its own)."""
    generator = build_generator()
    g = torch.Generator().manual_seed(seed)
    w = generator.w_avg + 0.7 * torch.randn(generator.num_ws, generator.w_dim, generator=g)
    metadata = {"generator": str(generator_file), "generator_sha256": sha256(generator_file)}
    return Latents(w, generator.synthesis.random_noise(1, generator=g), metadata)


@pytest.fixture(scope="module")
def dgp_run(tmp_path_factory) -> Path:
    """A finished DGP inpainting run of two images, a and b, each with its own fine-tuned generator."""
    root = tmp_path_factory.mktemp("dgp")
    generator = save_generator(build_generator(), root / "g.pt")
    discriminator = save_discriminator(build_discriminator(seed=1), root / "d.pt")
    module = DGPModule(generator=str(generator), discriminator=str(discriminator), degradations=["mask"],
                       init_candidates=4, diff_dtype="float32",
                       stages=[Stage("s1", 3, blocks=1, g_lr=2e-2, w_lr=1e-2), Stage("s2", 3, blocks=None, g_lr=2e-2)])
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    masks = torch.ones(2, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 0
    items = [dict(item, stem=stem) for item, stem in zip(make_items(images, masks), STEMS, strict=True)]
    fit(module, items, root / "run", batch_size=2)
    return root / "run"


# ---- the record ---------------------------------------------------------------------------------


def test_record_round_trip_keeps_code_noise_metadata_and_weights(tmp_path, tiny_generator_file):
    record = plain_record(tiny_generator_file)
    run = tmp_path / "run"
    record.weight_diff = run / "generators" / "x.pt"
    record.metadata["method"] = "dgp"
    record.save(run / "latents" / "x.pt")
    raw = torch.load(run / "latents" / "x.pt", weights_only=True)
    assert raw["metadata"]["generator_diff"] == "generators/x.pt"   # relative to the run folder
    shutil.move(run, tmp_path / "moved")
    loaded = Latents.load(tmp_path / "moved" / "latents" / "x.pt")
    assert torch.equal(loaded.w_plus, record.w_plus) and loaded.w_plus.dtype == torch.float32
    assert all(torch.equal(a, b) for a, b in zip(loaded.noise, record.noise, strict=True))
    assert loaded.metadata == record.metadata and loaded.name == "x"
    assert loaded.weight_diff == (tmp_path / "moved" / "generators" / "x.pt").absolute()

    record.save_npz(tmp_path / "x.npz")
    with np.load(tmp_path / "x.npz") as npz:
        assert npz["w"].shape == (1, *record.w_plus.shape)
    nvidia = Latents.load(tmp_path / "x.npz")
    assert torch.equal(nvidia.w_plus, record.w_plus) and nvidia.noise is None and nvidia.metadata == {}
    assert nvidia.weight_diff is None


def test_bad_records_are_named(tmp_path, tiny_generator, make_generator):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Latents.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pt: unreadable"):
        Latents.load(tmp_path / "junk.pt")
    torch.save({"codes": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a latents file"):
        Latents.load(tmp_path / "other.pt")
    torch.save({"w_plus": torch.zeros(2, 4), "noise": [1, 2]}, tmp_path / "noise.pt")
    with pytest.raises(ValueError, match="noise.pt: not a latents file"):
        Latents.load(tmp_path / "noise.pt")
    torch.save({"w_plus": torch.zeros(tiny_generator.num_ws, tiny_generator.w_dim)}, tmp_path / "w.pt")
    bigger = make_generator(img_resolution=64)
    with pytest.raises(ValueError, match=r"w\.pt: expected w_plus of shape"):
        Latents.load(tmp_path / "w.pt").check(bigger)


def test_a_changed_generator_is_refused_unless_named_explicitly(tmp_path, tiny_generator, tiny_generator_file,
                                                                 make_generator, caplog):
    record = plain_record(tiny_generator_file)
    record.save(tmp_path / "a.pt")
    expected = render_latents(tmp_path / "a.pt")
    torch.testing.assert_close(expected, render_latents(tmp_path / "a.pt", tiny_generator))
    save_generator(make_generator(seed=5), tiny_generator_file)    # the file changes under the record
    with pytest.raises(ValueError, match=r"a\.pt: the generator .* is not the one this code was fitted with"):
        render_latents(tmp_path / "a.pt")
    assert not torch.allclose(render_latents(tmp_path / "a.pt", str(tiny_generator_file)), expected)
    with pytest.raises(SystemExit):
        run_edit("mix", str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "--out", str(tmp_path / "out"))
    assert "SHA-256" in caplog.text
    run_edit("mix", str(tmp_path / "a.pt"), str(tmp_path / "a.pt"), "--generator", str(tiny_generator_file),
             "--out", str(tmp_path / "out"))
    assert (tmp_path / "out" / "a+a.rows4.png").is_file()


# ---- DGP results --------------------------------------------------------------------------------


def test_render_latents_of_a_dgp_result_reproduces_its_image(dgp_run):
    for stem in STEMS:
        path = dgp_run / "latents" / f"{stem}.pt"
        assert_reproduces(render_latents(path), dgp_run / "images" / f"{stem}.png")
        pretrained = Latents.load(path)
        pretrained.weight_diff = None
        assert not torch.allclose(pretrained.render(), render_latents(path), atol=0.05), "the fit changed weights"


def test_every_edit_of_a_dgp_result_in_its_identity_configuration_reproduces_it(dgp_run, tmp_path):
    a, b = (str(dgp_run / "latents" / f"{stem}.pt") for stem in STEMS)
    image_a, image_b = dgp_run / "images" / "a.png", dgp_run / "images" / "b.png"
    out = tmp_path / "edits"
    run_edit("morph", a, b, "--frames", "3", "--out", str(out))
    assert_reproduces(saved_image(out / "a~b" / "frame_000.png") / 127.5 - 1, image_a)
    assert_reproduces(saved_image(out / "a~b" / "frame_002.png") / 127.5 - 1, image_b)
    run_edit("morph", a, b, "--frames", "2", "--mask", "left", "--out", str(out))
    assert_reproduces(saved_image(out / "a~b.masked" / "frame_000.png") / 127.5 - 1, image_a)
    run_edit("activation", a, b, "--op", "copy", "--mask", "full", "--invert_mask", "true", "--out", str(out))
    assert_reproduces(saved_image(out / "a+b.copy.b16.conv0.png") / 127.5 - 1, image_a)
    run_edit("activation", a, b, "--op", "copy", "--mask", "full", "--styles_from", "b", "--out", str(out / "to_b"))
    assert_reproduces(saved_image(out / "to_b" / "a+b.copy.b16.conv0.png") / 127.5 - 1, image_b)
    run_edit("activation", a, b, "--op", "average", "--lam", "1", "--layer", "b8.conv1", "--out", str(out))
    assert_reproduces(saved_image(out / "a+b.average.b8.conv1.png") / 127.5 - 1, image_a)
    run_edit("transfer", a, b, "full", "--invert_mask", "true", "--out", str(out / "transfer"))
    assert_reproduces(saved_image(out / "transfer" / "a+b.copy.b16.conv0.png") / 127.5 - 1, image_a)
    run_edit("mix", a, a, "--rows", "3", "--out", str(out))
    assert_reproduces(saved_image(out / "a+a.rows3.png") / 127.5 - 1, image_a)
    assert_reproduces(render_latents(out / "a+a.rows3.pt"), image_a)      # the edited record keeps a's weights
    run_edit("jitter", a, "--count", "1", "--sigma", "0", "--out", str(out))
    assert_reproduces(saved_image(out / "a.jitter" / "frame_000.png") / 127.5 - 1, image_a)
    run_edit("arithmetic", a, b, a, "--strength", "0", "--out", str(out))
    assert_reproduces(saved_image(out / "a+a-b.png") / 127.5 - 1, image_a)
    assert_reproduces(render_latents(out / "a+a-b.pt"), image_a)


def test_mixing_two_fine_tuned_generators_is_refused(dgp_run, tmp_path, caplog):
    a, b = (str(dgp_run / "latents" / f"{stem}.pt") for stem in STEMS)
    with pytest.raises(SystemExit):
        run_edit("mix", a, b, "--out", str(tmp_path / "out"))
    assert "different fine-tuned generators" in caplog.text


def test_jitter_and_morph_render_any_code_with_its_own_weights(dgp_run, tmp_path):
    a = dgp_run / "latents" / "a.pt"
    plain = tmp_path / "plain.pt"
    plain_record(dgp_run.parent / "g.pt").save(plain)
    out = tmp_path / "out"
    run_edit("jitter", str(a), "--count", "2", "--sigma", "0.5", "--out", str(out))
    varied = saved_image(out / "a.jitter" / "frame_000.png")
    assert (varied - saved_image(dgp_run / "images" / "a.png")).abs().mean() > 2, "σ = 0.5 moves the image"
    run_edit("jitter", str(plain), "--count", "1", "--sigma", "0", "--out", str(out))
    assert_reproduces(render_latents(plain), out / "plain.jitter" / "frame_000.png")
    run_edit("morph", str(a), str(plain), "--frames", "3", "--out", str(out))
    assert_reproduces(saved_image(out / "a~plain" / "frame_000.png") / 127.5 - 1, dgp_run / "images" / "a.png")
    assert_reproduces(render_latents(plain), out / "a~plain" / "frame_002.png")     # it ends on the plain code
