"""Edits from latents files: activation-tensor operations, morphing, row mixing, code arithmetic, ``embed edit``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedding.commands import main as embed_main
from embedding.edits import operations as edits
from embedding.files import sha256
from embedding.latents import render_latents


@pytest.fixture
def codes(tiny_generator) -> tuple[edits.Code, edits.Code, edits.Code]:
    """Three codes near the mean, each with its own noise maps, as an embedding would leave them."""
    g = torch.Generator().manual_seed(3)
    synthesis = tiny_generator.synthesis
    out = []
    for name in ("a", "b", "c"):
        w = tiny_generator.w_avg + 0.7 * torch.randn(tiny_generator.num_ws, tiny_generator.w_dim, generator=g)
        out.append(edits.Code(w, synthesis.random_noise(1, generator=g), name))
    return tuple(out)


def render(generator, code: edits.Code) -> torch.Tensor:
    with torch.no_grad():
        return edits.render_codes(generator, [code])


def test_spatial_copy_with_an_empty_mask_returns_the_base_image(tiny_generator, codes):
    a, b, _ = codes
    empty = torch.zeros(1, 1, 32, 32)
    for layer in ("b8.conv0", "b16.conv1", 4):
        out = edits.activation_edit(tiny_generator, a, b, layer, "copy", empty)
        assert torch.equal(out, render(tiny_generator, a))


def test_spatial_copy_changes_only_what_the_mask_reaches(tiny_generator, codes):
    a, b, _ = codes
    right = torch.zeros(1, 1, 32, 32)
    right[..., 16:] = 1
    out = edits.activation_edit(tiny_generator, a, b, "b16.conv0", "copy", right)
    base, other = render(tiny_generator, a), render(tiny_generator, b)
    left_change = (out - base)[..., :8].abs().mean()
    right_change = (out - base)[..., 24:].abs().mean()
    assert right_change > 5 * left_change
    assert (out - other)[..., 24:].abs().mean() < (base - other)[..., 24:].abs().mean()


def test_average_and_channel_copy_reduce_to_a_at_their_extremes(tiny_generator, codes):
    a, b, _ = codes
    expected = render(tiny_generator, a)
    assert torch.allclose(edits.activation_edit(tiny_generator, a, b, "b8.conv1", "average", lam=1.0), expected)
    channels = list(range(tiny_generator.synthesis.b8.conv1.weight.shape[0]))
    assert torch.allclose(edits.activation_edit(tiny_generator, a, b, "b8.conv1", "channels", channels=channels),
                          expected)
    half = edits.activation_edit(tiny_generator, a, b, "b8.conv1", "channels", channels=channels[:8])
    assert not torch.allclose(half, expected)
    with pytest.raises(ValueError, match="channels"):
        edits.activation_edit(tiny_generator, a, b, "b8.conv1", "channels", channels=[999])


def test_layer_numbers_follow_the_paper(tiny_generator):
    assert edits.resolve_layer(tiny_generator, 4) == tiny_generator.synthesis.layer_names[3] == "b16.conv0"
    with pytest.raises(ValueError, match="layers are"):
        edits.resolve_layer(tiny_generator, "b1024.conv0")


def test_morph_endpoints_equal_the_inputs(tiny_generator, codes):
    a, b, _ = codes
    frames = edits.morph(tiny_generator, a, b, frames=5)
    assert frames.shape[0] == 5
    assert torch.allclose(frames[0], render(tiny_generator, a)[0], atol=1e-5)
    assert torch.allclose(frames[-1], render(tiny_generator, b)[0], atol=1e-5)
    steps = (frames[1:] - frames[:-1]).abs().mean(dim=(1, 2, 3))
    assert steps.max() < (frames[-1] - frames[0]).abs().mean(), "frames move gradually"


def test_masked_morph_moves_only_inside_the_mask(tiny_generator, codes):
    a, b, _ = codes
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    frames = edits.morph(tiny_generator, a, b, frames=3, mask=mask)
    base, other = render(tiny_generator, a)[0], render(tiny_generator, b)[0]
    assert torch.allclose(frames[0], base, atol=1e-5)
    far = torch.ones(32, 32, dtype=torch.bool)
    far[4:28, 4:28] = False
    assert (frames[-1] - base)[:, far].abs().max() < 1e-4, "outside the mask the first image stays"
    inside = (slice(None), slice(12, 20), slice(12, 20))
    assert (frames[-1] - other)[inside].abs().mean() < (base - other)[inside].abs().mean() / 2


def test_row_mixing_and_expression_transfer(tiny_generator, codes):
    a, b, c = codes
    mixed = edits.mix_rows(a, b, 3)
    assert torch.equal(mixed.w_plus[:3], a.w_plus[:3]) and torch.equal(mixed.w_plus[3:], b.w_plus[3:])
    assert mixed.noise[2] is a.noise[2] and mixed.noise[3] is b.noise[3]
    assert torch.equal(edits.mix_rows(a, b, tiny_generator.num_ws).w_plus, a.w_plus)
    same = edits.add_difference(c, a, a)
    assert torch.equal(same.w_plus, c.w_plus)
    moved = edits.add_difference(c, a, b, strength=0.5)
    assert torch.allclose(moved.w_plus, c.w_plus + 0.5 * (b.w_plus - a.w_plus))


def save_code(code: edits.Code, path: Path, generator_file: Path) -> Path:
    torch.save({"w_plus": code.w_plus, "noise": code.noise,
                "metadata": {"generator": str(generator_file), "generator_sha256": sha256(generator_file)}}, path)
    return path


def run_edit(*args: str) -> None:
    import sys

    argv, sys.argv = sys.argv, ["embed", "edit", *args]
    try:
        embed_main()
    finally:
        sys.argv = argv


def test_embed_edit_writes_every_result_from_latents_files(tiny_generator, tiny_generator_file, codes, tmp_path):
    a, b, c = (save_code(code, tmp_path / f"{code.name}.pt", tiny_generator_file) for code in codes)
    out = tmp_path / "edits"
    run_edit("activation", str(a), str(b), "--op", "copy", "--mask", "right", "--out", str(out))
    run_edit("transfer", str(a), str(b), "box:0.25,0.5,0.75,1", "--out", str(out))
    run_edit("morph", str(a), str(b), "--frames", "4", "--out", str(out))
    run_edit("morph", str(a), str(b), "--frames", "3", "--mask", "left", "--out", str(out))
    run_edit("mix", str(a), str(b), "--rows", "2", "--out", str(out))
    run_edit("arithmetic", str(c), str(a), str(b), "--out", str(out))
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["a+b.copy.b16.conv0.png", "a~b", "a~b.png", "a~b.gif", "a~b.masked", "a~b.masked.png",
                            "a~b.masked.gif", "a+b.rows2.png", "a+b.rows2.pt", "c+b-a.png", "c+b-a.pt"])
    assert len(list((out / "a~b").glob("frame_*.png"))) == 4
    with Image.open(out / "a~b.gif") as gif:
        assert gif.n_frames == 6   # there and back
    mixed = render_latents(out / "a+b.rows2.pt", tiny_generator)
    png = torch.from_numpy(np.asarray(Image.open(out / "a+b.rows2.png"), dtype=np.float32)).permute(2, 0, 1)
    assert (mixed[0].clamp(-1, 1) * 127.5 + 127.5 - png).abs().max() <= 1


def test_embed_edit_refuses_codes_of_another_generator(make_generator, tiny_generator_file, codes, tmp_path, caplog):
    from embedding.checkpoints import save_generator

    other = save_generator(make_generator(seed=5), tmp_path / "other.pt")
    a = save_code(codes[0], tmp_path / "a.pt", tiny_generator_file)
    b = save_code(codes[1], tmp_path / "b.pt", other)
    with pytest.raises(SystemExit) as exit_info:
        run_edit("morph", str(a), str(b), "--out", str(tmp_path / "out"))
    assert exit_info.value.code == 1
    assert "different generators" in caplog.text
    with pytest.raises(SystemExit):
        run_edit("mix", str(a), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "out"))
    assert "missing.pt" in caplog.text


@pytest.mark.parametrize(("recipe", "op", "inputs"), [
    ("attribute_transfer", "transfer", ("a", "b")), ("activation_ops", "activation", ("a", "b")),
    ("morph", "morph", ("a", "b")), ("style_mixing", "mix", ("content", "style")),
    ("expression_transfer", "arithmetic", ("base", "source", "target")),
])
def test_edit_recipes_run(tiny_generator_file, codes, tmp_path, recipe, op, inputs):
    files = [save_code(code, tmp_path / f"{code.name}.pt", tiny_generator_file) for code in codes]
    recipe_file = Path(__file__).resolve().parents[1] / "recipes" / f"{recipe}.yaml"
    run_edit(op, "--config", str(recipe_file), *map(str, files[:len(inputs)]), "--out", str(tmp_path / "out"))
    assert list((tmp_path / "out").glob("*.png"))
