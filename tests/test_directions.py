"""Attribute directions (files, the three ways to find one, ``embed edit attribute``) and constrained edits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from embedding.checkpoints import save_discriminator
from embedding.commands.edit import main as edit
from embedding.edits.constrained import constrained_edit
from embedding.edits.directions import Direction, linear_boundary, sefa
from embedding.edits.operations import Code
from embedding.files import sha256
from embedding.latents import Latents, render_latents
from tests.test_latents import saved_image


def test_direction_files_round_trip_and_move_only_their_rows(tiny_generator, tmp_path):
    w_dim, num_ws = tiny_generator.w_dim, tiny_generator.num_ws
    d = Direction(torch.randn(w_dim), [1, 3], {"how": "test"})
    d.save(tmp_path / "d.pt")
    back = Direction.load(tmp_path / "d.pt").check(tiny_generator)
    assert torch.equal(back.vector, d.vector) and back.rows == [1, 3] and back.metadata == {"how": "test"}
    w = torch.randn(num_ws, w_dim)
    moved = back.apply(w, 2.0)
    torch.testing.assert_close(moved[[1, 3]], w[[1, 3]] + 2 * d.vector)
    assert torch.equal(moved[[0, 2, *range(4, num_ws)]], w[[0, 2, *range(4, num_ws)]])
    with pytest.raises(ValueError, match="does not fit"):
        Direction(torch.randn(w_dim + 1)).check(tiny_generator)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"junk\.pt: not a direction file"):
        Direction.load(tmp_path / "junk.pt")


def test_sefa_gives_orthonormal_directions_the_style_weights_stretch_most(tiny_generator):
    vectors, values = sefa(tiny_generator, rows=[0, 1, 2], count=3)
    torch.testing.assert_close(vectors @ vectors.T, torch.eye(3), atol=1e-5, rtol=0)
    assert values[0] >= values[1] >= values[2]
    layers = [tiny_generator.synthesis.b4.conv1, tiny_generator.synthesis.b8.conv0, tiny_generator.synthesis.b8.conv1]
    a = torch.cat([layer.affine.weight / layer.affine.weight.norm(dim=1, keepdim=True) for layer in layers]).detach()
    stretch = lambda v: (a @ v).square().sum()  # noqa: E731
    others = torch.nn.functional.normalize(torch.randn(200, tiny_generator.w_dim), dim=1)
    assert all(stretch(v) <= stretch(vectors[0]) + 1e-4 for v in others)


def test_a_linear_boundary_points_toward_higher_scores(tiny_generator):
    brightness = lambda images: images.mean(dim=(1, 2, 3))  # noqa: E731
    normal = linear_boundary(tiny_generator, brightness, samples=400, batch=100)
    assert torch.isclose(normal.norm(), torch.tensor(1.0))
    g = tiny_generator
    spread = g.mapping(torch.randn(500, g.z_dim), None)[:, 0].std(0).norm()
    with torch.no_grad():
        ws = torch.stack([g.w_avg + s * spread * normal for s in (-1.0, 1.0)])
        images = g.synthesis(ws[:, None].expand(-1, g.num_ws, -1), noise_mode="const")
    assert brightness(images)[1] > brightness(images)[0]


def test_mean_difference_and_attribute_edits_from_latents_files(tiny_generator, tiny_generator_file, tmp_path):
    g = tiny_generator
    meta = {"generator": str(tiny_generator_file), "generator_sha256": sha256(tiny_generator_file)}
    codes = {}
    for group, shift in (("plain", 0.0), ("marked", 1.0)):
        (tmp_path / group).mkdir()
        for i in range(3):
            w = g.w_avg + 0.3 * torch.randn(g.num_ws, g.w_dim) + shift
            codes[f"{group}{i}"] = w
            Latents(w, g.synthesis.random_noise(1), meta).save(tmp_path / group / f"{group}{i}.pt")
    edit(["direction", "mean", str(tmp_path / "plain"), f"{tmp_path}/marked/*.pt", "--out", str(tmp_path / "d.pt")])
    want = torch.stack([codes[f"marked{i}"] for i in range(3)]).mean(0) - torch.stack(
        [codes[f"plain{i}"] for i in range(3)]).mean(0)
    torch.testing.assert_close(Direction.load(tmp_path / "d.pt").vector, want)
    a = tmp_path / "plain" / "plain0.pt"
    edit(["attribute", str(a), str(tmp_path / "d.pt"), "--strengths", "[0, 1]", "--out", str(tmp_path / "out")])
    strip = saved_image(tmp_path / "out" / "plain0.d.png")
    assert strip.shape == (3, 32, 64)
    first = (render_latents(a)[0].clamp(-1, 1) + 1) * 127.5
    assert (strip[..., :32] - first).abs().max() <= 1, "strength 0 is the image itself"
    moved = Latents.load(tmp_path / "out" / "plain0.d" / "1.pt")
    torch.testing.assert_close(moved.w_plus, codes["plain0"] + want)
    second = (render_latents(tmp_path / "out" / "plain0.d" / "1.pt")[0].clamp(-1, 1) + 1) * 127.5
    assert (strip[..., 32:] - second).abs().max() <= 1, "each frame's latents file re-renders it"


def test_a_constrained_edit_meets_the_strokes_and_stays_near_the_fit_elsewhere(tiny_generator, tiny_generator_file,
                                                                              tiny_discriminator, tmp_path):
    g = tiny_generator
    w = g.w_avg + 0.3 * torch.randn(g.num_ws, g.w_dim, generator=torch.Generator().manual_seed(0))
    meta = {"generator": str(tiny_generator_file), "generator_sha256": sha256(tiny_generator_file)}
    Latents(w, g.synthesis.random_noise(1), meta).save(tmp_path / "a.pt")
    strokes = np.zeros((32, 32, 4), dtype=np.uint8)
    strokes[8:16, 4:28] = (255, 40, 40, 255)                      # a red band across the upper middle
    Image.fromarray(strokes, "RGBA").save(tmp_path / "strokes.png")
    d = save_discriminator(tiny_discriminator, tmp_path / "d.pt")
    edit(["constrain", str(tmp_path / "a.pt"), str(tmp_path / "strokes.png"), "--discriminator", str(d),
          "--steps", "60", "--lr", "0.05", "--lam_code", "0.1", "--out", str(tmp_path / "out")])
    before = (render_latents(tmp_path / "a.pt")[0] + 1) * 127.5
    after = saved_image(tmp_path / "out" / "a.constrained.png")
    red = torch.tensor([255.0, 40.0, 40.0])[:, None, None]
    inside = (slice(None), slice(8, 16), slice(4, 28))
    assert (after[inside] - red).square().mean() < 0.5 * (before[inside] - red).square().mean()
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[8:16, 4:28] = False
    assert (after - before)[:, outside].square().mean() < (after - before)[inside].square().mean()
    torch.testing.assert_close(Latents.load(tmp_path / "out" / "a.constrained.pt").render()[0].clamp(-1, 1),
                               after / 127.5 - 1, atol=1 / 127.5, rtol=0)

    record = Latents.load(tmp_path / "a.pt")
    code = Code(record.w_plus, record.noise, "a")
    target, mask = torch.zeros(3, 32, 32), torch.zeros(1, 32, 32)
    mask[:, 8:16] = 1
    near = constrained_edit(g, tiny_discriminator, code, target, mask, steps=30, lr=0.05, code_weight=100.0)[1]
    free = constrained_edit(g, tiny_discriminator, code, target, mask, steps=30, lr=0.05, code_weight=0.0)[1]
    assert near.code_distance < free.code_distance, "λ1 keeps the code near the fit"
    realer = constrained_edit(g, tiny_discriminator, code, target, mask, steps=30, lr=0.05, code_weight=0.0,
                              realism_weight=10.0)[1]
    assert realer.realism_after > free.realism_after, "λ2 raises the discriminator's score"
    loose = constrained_edit(g, tiny_discriminator, code, target, mask, steps=30, lr=0.05, code_weight=0.0,
                             keep_weight=0.0)[1]
    assert free.outside_change < 0.5 * loose.outside_change, "λk keeps the image outside the constraint"


def test_a_boundary_renders_a_large_generators_samples_a_few_at_a_time(tiny_generator, monkeypatch):
    """At 1024² a hundred renders at once would take some 27 GiB; the default batch follows the resolution."""
    monkeypatch.setattr(tiny_generator, "img_resolution", 1024)
    sizes = []

    def brightness(images):
        sizes.append(len(images))
        return images.mean(dim=(1, 2, 3))

    linear_boundary(tiny_generator, brightness, samples=20)
    assert sizes == [8, 8, 4]
