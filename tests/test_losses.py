"""Tests of the VGG-16 feature extractor, its weight loading and the Eq. 1 loss terms."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from embedding.losses import (
    EmbeddingLoss,
    downsample_mask,
    gram_matrix,
    latent_pull,
    masked_mse,
    perceptual_loss,
    style_loss,
)
from embedding.vgg import LAYER_INDEX, VGG16Features, imagenet_cache_path, load_vgg16


@pytest.fixture(scope="module")
def vgg() -> VGG16Features:
    """One random-weight VGG-16 shared by the tests that only read it."""
    return load_vgg16("random")


def _images(batch: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Deterministic images in [-1, 1]."""
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _loop_pool(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """Block averages of a [B, 1, H, W] mask, written as explicit loops."""
    b, _, h, w = mask.shape
    out = torch.zeros(b, 1, h // factor, w // factor)
    for n in range(b):
        for i in range(h // factor):
            for j in range(w // factor):
                out[n, 0, i, j] = mask[n, 0, i * factor:(i + 1) * factor, j * factor:(j + 1) * factor].mean()
    return out


def _perturbed_state(seed: int) -> dict[str, torch.Tensor]:
    """A features-only VGG-16 state dict that differs from the seeded random init."""
    g = torch.Generator().manual_seed(seed)
    state = load_vgg16("random").features.state_dict()
    return {key: value * 1.5 + 0.01 * torch.randn(value.shape, generator=g) for key, value in state.items()}


# ---- pixel MSE ----------------------------------------------------------------------------------

def test_masked_mse_matches_loop_in_pixel_units() -> None:
    render, target = _images(2, 2, seed=1), _images(2, 2, seed=2)
    mask = torch.tensor([[[[1.0, 0.5], [0.0, 1.0]]], [[[0.25, 1.0], [1.0, 0.0]]]])
    expected = torch.zeros(2)
    for b in range(2):
        for c in range(3):
            for i in range(2):
                for j in range(2):
                    pixel = (render[b, c, i, j] - target[b, c, i, j]) * 255 / 2
                    expected[b] += (mask[b, 0, i, j] * pixel) ** 2 / 12
    torch.testing.assert_close(masked_mse(render, target, mask), expected)


def test_masked_mse_half_mask_ignores_other_half() -> None:
    render, target = _images(2, 8, seed=1), _images(2, 8, seed=2)
    mask = torch.zeros(2, 1, 8, 8)
    mask[..., :4] = 1
    changed = target.clone()
    changed[..., 4:] = 0.3
    torch.testing.assert_close(masked_mse(render, target, mask), masked_mse(render, changed, mask))
    left = ((render - target)[..., :4] * 127.5).pow(2).sum(dim=(1, 2, 3)) / (3 * 8 * 8)
    torch.testing.assert_close(masked_mse(render, target, mask), left)


def test_all_ones_mask_equals_no_mask() -> None:
    render, target = _images(2, 8, seed=1), _images(2, 8, seed=2)
    ones = torch.ones(2, 1, 8, 8)
    torch.testing.assert_close(masked_mse(render, target, ones), masked_mse(render, target))
    feats_r = {"a": torch.randn(2, 4, 8, 8), "b": torch.randn(2, 5, 4, 4)}
    feats_t = {"a": torch.randn(2, 4, 8, 8), "b": torch.randn(2, 5, 4, 4)}
    torch.testing.assert_close(perceptual_loss(feats_r, feats_t, ones, ("a", "b")),
                               perceptual_loss(feats_r, feats_t, None, ("a", "b")))
    torch.testing.assert_close(gram_matrix(feats_r["b"], ones), gram_matrix(feats_r["b"]))


# ---- masks at layer resolution ------------------------------------------------------------------

def test_downsample_mask_is_area_average() -> None:
    mask = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(downsample_mask(mask, (4, 4)), _loop_pool(mask, 2))
    torch.testing.assert_close(downsample_mask(mask, (2, 2)), _loop_pool(mask, 4))
    assert downsample_mask(mask, (8, 8)) is mask


# ---- perceptual loss ----------------------------------------------------------------------------

def test_perceptual_loss_matches_loop_with_downsampled_mask() -> None:
    g = torch.Generator().manual_seed(4)
    feats_r = {"hi": torch.randn(2, 3, 4, 4, generator=g), "lo": torch.randn(2, 2, 2, 2, generator=g)}
    feats_t = {"hi": torch.randn(2, 3, 4, 4, generator=g), "lo": torch.randn(2, 2, 2, 2, generator=g)}
    mask = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    pooled = {"hi": mask, "lo": _loop_pool(mask, 2)}
    expected = torch.zeros(2)
    for layer in ("hi", "lo"):
        _, c, h, w = feats_r[layer].shape
        for b in range(2):
            acc = 0.0
            for k in range(c):
                for i in range(h):
                    for j in range(w):
                        d = feats_r[layer][b, k, i, j] - feats_t[layer][b, k, i, j]
                        acc += float((pooled[layer][b, 0, i, j] * d) ** 2)
            expected[b] += acc / (c * h * w)
    torch.testing.assert_close(perceptual_loss(feats_r, feats_t, mask, ("hi", "lo")), expected)


def test_perceptual_loss_only_listed_layers() -> None:
    feats = {"a": torch.zeros(1, 2, 4, 4), "b": torch.ones(1, 2, 2, 2)}
    other = {"a": torch.ones(1, 2, 4, 4), "b": torch.zeros(1, 2, 2, 2) + 3}
    torch.testing.assert_close(perceptual_loss(feats, other, None, ("a",)), torch.tensor([1.0]))
    torch.testing.assert_close(perceptual_loss(feats, other, None, ("a", "b")), torch.tensor([5.0]))


# ---- Gram matrix and style loss -----------------------------------------------------------------

def _loop_gram(feat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked, normalised Gram of one image [C, H, W] with a mask [H, W], as explicit sums."""
    c = feat.shape[0]
    gram = torch.zeros(c, c)
    for i in range(c):
        for j in range(c):
            gram[i, j] = (mask * feat[i] * mask * feat[j]).sum()
    return gram / (c * mask.sum())


def test_gram_matrix_matches_loop() -> None:
    g = torch.Generator().manual_seed(5)
    feat = torch.randn(2, 3, 4, 4, generator=g)
    mask = torch.rand(2, 1, 8, 8, generator=g)
    pooled = _loop_pool(mask, 2)
    expected = torch.stack([_loop_gram(feat[b], pooled[b, 0]) for b in range(2)])
    torch.testing.assert_close(gram_matrix(feat, mask), expected)
    plain = torch.stack([_loop_gram(feat[b], torch.ones(4, 4)) for b in range(2)])
    torch.testing.assert_close(gram_matrix(feat), plain)


def test_gram_matrix_empty_mask_is_zero() -> None:
    assert torch.equal(gram_matrix(torch.randn(1, 3, 4, 4), torch.zeros(1, 1, 4, 4)), torch.zeros(1, 3, 3))


def test_style_loss_matches_loop_with_separate_target_mask() -> None:
    g = torch.Generator().manual_seed(6)
    feats_r = {"s": torch.randn(2, 3, 4, 4, generator=g)}
    feats_t = {"s": torch.randn(2, 3, 4, 4, generator=g)}
    mask_r = (torch.rand(2, 1, 4, 4, generator=g) > 0.3).float()
    mask_t = (torch.rand(2, 1, 4, 4, generator=g) > 0.6).float()
    expected = torch.stack([
        ((_loop_gram(feats_r["s"][b], mask_r[b, 0]) - _loop_gram(feats_t["s"][b], mask_t[b, 0])) ** 2).sum()
        for b in range(2)
    ])
    torch.testing.assert_close(style_loss(feats_r, feats_t, mask_r, mask_t, ("s",)), expected)
    same = style_loss(feats_r, feats_t, mask_r, None, ("s",))
    torch.testing.assert_close(same, style_loss(feats_r, feats_t, mask_r, mask_r, ("s",)))


def test_style_loss_ignores_spatial_arrangement() -> None:
    feat = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(7))
    shuffled = feat.flatten(2)[..., torch.randperm(16, generator=torch.Generator().manual_seed(8))]
    loss = style_loss({"s": feat}, {"s": shuffled.view(1, 4, 4, 4)}, layers=("s",))
    torch.testing.assert_close(loss, torch.zeros(1), atol=1e-6, rtol=0)


def test_latent_pull() -> None:
    w, ref = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    expected = torch.tensor([sum(float(v) ** 2 for v in (w[b] - ref[b]).flatten()) for b in range(2)])
    torch.testing.assert_close(latent_pull(w, ref), expected)


# ---- VGG features -------------------------------------------------------------------------------

def test_vgg_first_layer_by_hand(vgg: VGG16Features) -> None:
    x = _images(2, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    conv = vgg.features[0]
    expected = F.relu(F.conv2d(((x + 1) / 2 - mean) / std, conv.weight, conv.bias, padding=1))
    torch.testing.assert_close(vgg(x, ["conv1_1"])["conv1_1"], expected)


def test_vgg_returns_requested_layers_and_stops_early(vgg: VGG16Features) -> None:
    calls = []
    handle = vgg.features[LAYER_INDEX["conv2_2"] + 1].register_forward_hook(lambda *_: calls.append(1))
    try:
        feats = vgg(_images(1, 16), ["conv2_2", "conv1_1"])
    finally:
        handle.remove()
    assert set(feats) == {"conv1_1", "conv2_2"}
    assert feats["conv1_1"].shape == (1, 64, 16, 16) and feats["conv2_2"].shape == (1, 128, 8, 8)
    assert not calls
    with pytest.raises(ValueError, match="conv9_9"):
        vgg(_images(1, 16), ["conv9_9"])


def test_vgg_resize() -> None:
    small = load_vgg16("random", resize=16)
    assert small(_images(1, 32), ["conv1_1"])["conv1_1"].shape == (1, 64, 16, 16)
    by_default = load_vgg16("random")  # larger than 256²: seen at 256², as Image2StyleGAN saw 1024² faces
    assert by_default(_images(1, 320), ["conv1_1"])["conv1_1"].shape == (1, 64, 256, 256)
    assert by_default(_images(1, 64), ["conv1_1"])["conv1_1"].shape == (1, 64, 64, 64)


def test_random_weights_are_deterministic_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        a, b = load_vgg16("random"), load_vgg16("random")
    assert "random weights" in caplog.text
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert all(not p.requires_grad for p in a.parameters())


# ---- weight loading -----------------------------------------------------------------------------

def test_load_missing_path_names_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "vgg16.pth"
    with pytest.raises(FileNotFoundError, match=str(path)):
        load_vgg16(str(path))


def test_load_unreadable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="broken.pth"):
        load_vgg16(path)


@pytest.mark.parametrize("prefix", ["", "features."])
def test_state_dict_round_trip(tmp_path: Path, prefix: str) -> None:
    state = _perturbed_state(seed=9)
    saved = {prefix + key: value for key, value in state.items()}
    if prefix:
        saved["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path / "vgg16.pth"
    torch.save(saved, path)
    loaded = load_vgg16(str(path))
    reference = VGG16Features()
    reference.features.load_state_dict(state)
    x = _images(2, 16)
    torch.testing.assert_close(loaded(x, ["conv3_3"])["conv3_3"], reference(x, ["conv3_3"])["conv3_3"])
    assert not torch.equal(loaded.features[0].weight, load_vgg16("random").features[0].weight)


def test_state_dict_missing_key_and_wrong_shape_are_named(tmp_path: Path) -> None:
    state = _perturbed_state(seed=10)
    del state["28.bias"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(ValueError, match=r"short\.pth.*'28\.bias'"):
        load_vgg16(tmp_path / "short.pth")
    state = _perturbed_state(seed=10)
    state["0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"'0\.weight'.*\(64, 1, 3, 3\)"):
        load_vgg16(tmp_path / "shape.pth")


def _no_download(*args: object, **kwargs: object) -> None:
    raise OSError("network is unreachable")


def test_torchvision_without_cache_or_network_explains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_download)
    with pytest.raises(FileNotFoundError) as info:
        load_vgg16("torchvision")
    message = str(info.value)
    assert str(tmp_path / "checkpoints" / "vgg16-397923af.pth") in message
    assert "vgg_weights" in message and "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    assert "network is unreachable" in message


def test_torchvision_loads_from_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_download)
    state = _perturbed_state(seed=11)
    imagenet_cache_path().parent.mkdir(parents=True)
    torch.save({"features." + key: value for key, value in state.items()}, imagenet_cache_path())
    loaded = load_vgg16("torchvision")
    assert torch.equal(loaded.features[28].weight, state["28.weight"])


# ---- Eq. 1 --------------------------------------------------------------------------------------

def _halves(batch: int, size: int) -> torch.Tensor:
    """Per-image masks: image k keeps a different vertical band."""
    mask = torch.zeros(batch, 1, size, size)
    for k in range(batch):
        mask[k, ..., k * 4:k * 4 + size // 2] = 1
    return mask


def _all_terms(loss: EmbeddingLoss, render: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               masks: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return loss(render, x, y, w_style=2.0, w_mse1=1e-5, w_mse2=3e-5, w_percept=0.5, **masks)


def test_embedding_loss_combines_terms(vgg: VGG16Features) -> None:
    loss = EmbeddingLoss(vgg)
    render, x, y = _images(2, seed=1), _images(2, seed=2), _images(2, seed=3)
    masks = {"mask_style": _halves(2, 32), "mask_mse": 1 - _halves(2, 32), "mask_percept": _halves(2, 32)}
    total, terms = _all_terms(loss, render, x, y, masks)
    layers = ["conv1_1", "conv1_2", "conv2_2", "conv3_3"]
    fr, fx, fy = vgg(render, layers), vgg(x, layers), vgg(y, layers)
    expected = {
        "mse1": masked_mse(render, x, masks["mask_mse"]),
        "mse2": masked_mse(render, y, 1 - masks["mask_mse"]),
        "percept": perceptual_loss(fr, fx, masks["mask_percept"], layers),
        "style": style_loss(fr, fy, masks["mask_style"], layers=("conv3_3",)),
    }
    assert set(terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value)
    weights = {"style": 2.0, "mse1": 1e-5, "mse2": 3e-5, "percept": 0.5}
    weighted = sum(weights[name] * value for name, value in expected.items())
    torch.testing.assert_close(total, weighted)
    assert total.shape == (2,)


def test_embedding_loss_per_image_independence(vgg: VGG16Features) -> None:
    loss = EmbeddingLoss(vgg)
    render, x, y = _images(3, seed=4), _images(3, seed=5), _images(3, seed=6)
    band = _halves(3, 32)
    masks = {"mask_style": band, "mask_mse": band.flip(-1), "mask_percept": band}
    total, terms = _all_terms(loss, render, x, y, masks)
    for k in range(3):
        one = {name: mask[k:k + 1] for name, mask in masks.items()}
        alone, alone_terms = _all_terms(loss, render[k:k + 1], x[k:k + 1], y[k:k + 1], one)
        torch.testing.assert_close(total[k:k + 1], alone, rtol=1e-5, atol=1e-5)
        for name, value in alone_terms.items():
            torch.testing.assert_close(terms[name][k:k + 1], value, rtol=1e-5, atol=1e-5)


def test_gradients_reach_render_not_vgg(vgg: VGG16Features) -> None:
    loss = EmbeddingLoss(vgg)
    render = _images(2, seed=7).requires_grad_(True)
    total, _ = _all_terms(loss, render, _images(2, seed=8), _images(2, seed=9), {"mask_mse": _halves(2, 32)})
    total.sum().backward()
    assert render.grad is not None and torch.isfinite(render.grad).all() and render.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_zero_weighted_terms_do_not_run_vgg(vgg: VGG16Features) -> None:
    loss = EmbeddingLoss(vgg)
    calls = []
    handle = vgg.register_forward_hook(lambda *_: calls.append(1))
    render, x, y = _images(2, seed=1), _images(2, seed=2), _images(2, seed=3)
    try:
        total, terms = loss(render, x, y, w_mse1=1e-5, w_mse2=1e-5, mask_mse=_halves(2, 32))
        assert not calls and set(terms) == {"mse1", "mse2"}
        x_features = loss.target_features(x)
        calls.clear()
        loss(render, x, y, w_percept=1e-5, w_style=1.0, x_features=x_features, y_features=x_features)
        assert len(calls) == 1
        calls.clear()
        loss(render, x, w_percept=1e-5)
        assert len(calls) == 2
    finally:
        handle.remove()


def test_precomputed_target_features_match(vgg: VGG16Features) -> None:
    loss = EmbeddingLoss(vgg)
    render, x, y = _images(2, seed=1), _images(2, seed=2), _images(2, seed=3)
    weights = {"w_percept": 1.0, "w_style": 1.0}
    fresh, _ = loss(render, x, y, **weights)
    cached, _ = loss(render, None, None, x_features=loss.target_features(x),
                     y_features=loss.target_features(y), **weights)
    torch.testing.assert_close(fresh, cached)


def test_mse2_without_mask_is_zero_and_missing_target_is_named(vgg: VGG16Features) -> None:
    loss = EmbeddingLoss(vgg)
    render = _images(2, seed=1)
    total, terms = loss(render, _images(2, seed=2), w_mse2=1.0)
    assert torch.equal(total, torch.zeros(2)) and torch.equal(terms["mse2"], torch.zeros(2))
    with pytest.raises(ValueError, match="`y`.*w_style"):
        loss(render, _images(2, seed=2), w_style=1.0)


def test_feature_scale_puts_perceptual_and_style_terms_in_paper_units(vgg: VGG16Features) -> None:
    torch.manual_seed(3)
    render, x = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    plain = EmbeddingLoss(vgg)(render, x, x, w_percept=1.0, w_style=1.0)[1]
    scaled = EmbeddingLoss(vgg, feature_scale=10.0)(render, x, x, w_percept=1.0, w_style=1.0)[1]
    torch.testing.assert_close(scaled["percept"], plain["percept"] * 100)
    torch.testing.assert_close(scaled["style"], plain["style"] * 10_000)


def test_percept2_compares_with_y_outside_the_perceptual_mask(vgg: VGG16Features) -> None:
    loss = EmbeddingLoss(vgg)
    render, x, y = _images(2, seed=1), _images(2, seed=2), _images(2, seed=3)
    left = torch.zeros(2, 1, 32, 32)
    left[..., :16] = 1
    _, terms = loss(render, x, y, w_percept=1.0, w_percept2=1.0, mask_percept=left)
    feats = {k: v for k, v in vgg(render, loss.percept_layers).items()}
    expected = perceptual_loss(feats, vgg(y, loss.percept_layers), 1 - left, loss.percept_layers)
    assert torch.allclose(terms["percept2"], expected, rtol=1e-4)
    _, unmasked = loss(render, x, y, w_percept2=1.0)
    assert torch.equal(unmasked["percept2"], torch.zeros(2)), "nothing lies outside an all-ones mask"
