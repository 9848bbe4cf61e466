"""The StyleGAN2 generator and discriminator: shapes, truncation, noise, activation taps, gradients, precision."""

from __future__ import annotations

import pytest
import torch

from embedding.generators import Generator

LAYER_NAMES_32 = ["b4.conv1", "b8.conv0", "b8.conv1", "b16.conv0", "b16.conv1", "b32.conv0", "b32.conv1"]


def _ws(generator: Generator, batch: int = 2, seed: int = 0) -> torch.Tensor:
    z = torch.randn(batch, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return generator.mapping(z)


@pytest.mark.parametrize("resolution", [4, 8, 32, 64])
def test_layer_counts_and_noise_shapes(make_generator, resolution):
    g = make_generator(img_resolution=resolution)
    synthesis = g.synthesis
    sizes = [4] + [r for r in synthesis.block_resolutions[1:] for _ in range(2)]
    assert g.num_ws == synthesis.num_ws == 2 * round(torch.log2(torch.tensor(resolution)).item()) - 2
    assert synthesis.noise_shapes == [(1, 1, s, s) for s in sizes]
    assert [tuple(n.shape) for n in synthesis.const_noise()] == synthesis.noise_shapes
    assert [tuple(n.shape) for n in synthesis.random_noise(3)] == [(3, 1, s, s) for s in sizes]
    assert len(synthesis.layer_names) == len(sizes)
    assert g.synthesis(_ws(g)).shape == (2, 3, resolution, resolution)


def test_mapping_and_layer_names(tiny_generator):
    z = torch.randn(5, 32)
    ws = tiny_generator.mapping(z)
    assert ws.shape == (5, 8, 32)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))
    assert tiny_generator.synthesis.layer_names == LAYER_NAMES_32
    assert tiny_generator(z).shape == (5, 3, 32, 32)


def test_truncation(tiny_generator):
    z = torch.randn(4, 32)
    ws = tiny_generator.mapping(z, truncation_psi=0)
    assert torch.allclose(ws, tiny_generator.w_avg.expand_as(ws))
    half = tiny_generator.mapping(z, truncation_psi=0.5, truncation_cutoff=3)
    full = tiny_generator.mapping(z)
    assert torch.allclose(half[:, :3], tiny_generator.w_avg.lerp(full[:, :3], 0.5))
    assert torch.equal(half[:, 3:], full[:, 3:])


def test_conditional_mapping_requires_label(make_generator):
    g = make_generator(c_dim=5)
    with pytest.raises(ValueError, match=r"conditional.*\[B, 5\]"):
        g.mapping(torch.randn(2, 32))
    c = torch.eye(5)[:2]
    ws = g.mapping(torch.randn(2, 32), c)
    assert ws.shape == (2, 8, 32)
    assert not torch.equal(ws, g.mapping(torch.randn(2, 32), torch.eye(5)[2:4]))


def test_discriminator_score_and_features(tiny_discriminator):
    img = torch.randn(4, 3, 32, 32)
    score, feats = tiny_discriminator.features(img)
    assert score.shape == (4, 1)
    assert tiny_discriminator.feature_names == ["b32", "b16", "b8"]
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "b32": (4, 32, 16, 16), "b16": (4, 32, 8, 8), "b8": (4, 32, 4, 4)}
    assert torch.equal(tiny_discriminator(img), score)


def test_noise_controls_the_image(tiny_generator):
    synthesis = tiny_generator.synthesis
    ws = _ws(tiny_generator)
    noise = synthesis.random_noise(2, generator=torch.Generator().manual_seed(1))
    other = synthesis.random_noise(2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(synthesis(ws, noise=noise), synthesis(ws, noise=[n.clone() for n in noise]))
    assert not torch.allclose(synthesis(ws, noise=noise), synthesis(ws, noise=other))
    assert torch.equal(synthesis(ws), synthesis(ws, noise=synthesis.const_noise()))
    assert not torch.allclose(synthesis(ws, noise_mode="none"), synthesis(ws))


def test_shared_noise_broadcasts_over_batch(tiny_generator):
    synthesis = tiny_generator.synthesis
    ws = _ws(tiny_generator, batch=3)
    shared = synthesis.random_noise(1, generator=torch.Generator().manual_seed(1))
    per_image = [n.expand(3, -1, -1, -1).clone() for n in shared]
    assert torch.allclose(synthesis(ws, noise=shared), synthesis(ws, noise=per_image), atol=1e-6)


def test_bad_noise_lists_are_refused(tiny_generator):
    synthesis = tiny_generator.synthesis
    ws = _ws(tiny_generator)
    noise = synthesis.const_noise()
    with pytest.raises(ValueError, match="expected 7 noise maps, got 6"):
        synthesis(ws, noise=noise[:-1])
    noise[3] = torch.randn(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"noise map 3 must be \[1 or 2, 1, 16, 16\]"):
        synthesis(ws, noise=noise)
    with pytest.raises(ValueError, match="noise map 0"):
        synthesis(ws, noise=[torch.randn(3, 1, 4, 4), *noise[1:]])
    with pytest.raises(ValueError, match="noise_mode"):
        synthesis(ws, noise_mode="fresh")


def test_wrong_ws_shape_is_refused(tiny_generator):
    with pytest.raises(ValueError, match=r"ws must be \[B, 8, 32\]"):
        tiny_generator.synthesis(torch.randn(2, 7, 32))


def test_taps_read_activations(tiny_generator):
    synthesis = tiny_generator.synthesis
    with synthesis.taps(read=LAYER_NAMES_32) as acts:
        synthesis(_ws(tiny_generator))
    assert {k: tuple(v.shape) for k, v in acts.items()} == {
        name: (2, 32, int(name.split(".")[0][1:]), int(name.split(".")[0][1:])) for name in LAYER_NAMES_32}


def test_taps_replace(tiny_generator):
    synthesis = tiny_generator.synthesis
    ws = _ws(tiny_generator)
    reference = synthesis(ws)
    with synthesis.taps(read=["b16.conv0"]) as acts:
        synthesis(ws)
    with synthesis.taps(replace={"b16.conv0": acts["b16.conv0"]}):
        assert torch.equal(synthesis(ws), reference)
    with synthesis.taps(replace={"b16.conv0": lambda a: a}):
        assert torch.equal(synthesis(ws), reference)
    with synthesis.taps(replace={"b16.conv0": torch.zeros_like(acts["b16.conv0"])}):
        zeroed = synthesis(ws)
    with synthesis.taps(replace={"b16.conv0": lambda a: a * 0}):
        assert torch.equal(synthesis(ws), zeroed)
    assert not torch.allclose(zeroed, reference)


def test_taps_replace_reads_the_replacement(tiny_generator):
    synthesis = tiny_generator.synthesis
    with synthesis.taps(read=["b8.conv1"], replace={"b8.conv1": lambda a: a + 1}) as acts:
        synthesis(_ws(tiny_generator))
    with synthesis.taps(read=["b8.conv1"]) as plain:
        synthesis(_ws(tiny_generator))
    assert torch.allclose(acts["b8.conv1"], plain["b8.conv1"] + 1)


def test_taps_unknown_layer(tiny_generator):
    with pytest.raises(KeyError, match="b8.conv2"), tiny_generator.synthesis.taps(read=["b8.conv2"]):
        pass
    with pytest.raises(KeyError, match="b4.conv0"), tiny_generator.synthesis.taps(replace={"b4.conv0": torch.ones(1)}):
        pass


def test_taps_are_removed_after_the_block(tiny_generator):
    synthesis = tiny_generator.synthesis
    ws = _ws(tiny_generator)
    before = synthesis(ws)
    with synthesis.taps(read=["b4.conv1"], replace={"b32.conv1": lambda a: -a}) as acts:
        assert not torch.allclose(synthesis(ws), before)
    acts.clear()
    assert torch.equal(synthesis(ws), before)
    assert acts == {}


def test_taps_are_removed_after_an_error(tiny_generator):
    synthesis = tiny_generator.synthesis
    ws = _ws(tiny_generator)
    before = synthesis(ws)
    with pytest.raises(RuntimeError, match="stop"), synthesis.taps(replace={"b8.conv0": lambda a: a * 0}):
        raise RuntimeError("stop")
    assert torch.equal(synthesis(ws), before)


def test_gradients_reach_ws_and_noise(tiny_generator):
    synthesis = tiny_generator.synthesis
    ws = _ws(tiny_generator).detach().requires_grad_()
    noise = [n.clone().requires_grad_() for n in synthesis.random_noise(2)]
    synthesis(ws, noise=noise).square().mean().backward()
    assert ws.grad is not None and ws.grad.abs().amax(dim=2).gt(0).all()
    assert all(n.grad is not None and n.grad.abs().sum() > 0 for n in noise)


def test_cpu_renders_are_deterministic(tiny_generator):
    ws = _ws(tiny_generator)
    assert torch.equal(tiny_generator.synthesis(ws), tiny_generator.synthesis(ws))


def test_bf16_autocast_is_close_to_fp32(tiny_generator, tiny_discriminator):
    ws = _ws(tiny_generator)
    reference = tiny_generator.synthesis(ws)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        img = tiny_generator.synthesis(ws)
        score = tiny_discriminator(reference)
    assert img.dtype == torch.float32
    assert (img - reference).abs().max() < 0.05 * reference.abs().max()
    assert torch.allclose(score.float(), tiny_discriminator(reference), rtol=0.05, atol=0.05)


def test_channels_last(tiny_generator, tiny_discriminator):
    ws = _ws(tiny_generator)
    noise = tiny_generator.synthesis.random_noise(2, generator=torch.Generator().manual_seed(1))
    img = tiny_generator.synthesis(ws, noise=noise)
    score = tiny_discriminator(img)
    tiny_generator.to(memory_format=torch.channels_last)
    tiny_discriminator.to(memory_format=torch.channels_last)
    img_cl = tiny_generator.synthesis(ws, noise=[n.to(memory_format=torch.channels_last) for n in noise])
    assert torch.allclose(img_cl, img, atol=1e-5)
    assert torch.allclose(tiny_discriminator(img.to(memory_format=torch.channels_last)), score, atol=1e-5)
