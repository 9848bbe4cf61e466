"""MobileStyleGAN: the port against OpenVINO's outputs, the generator interface on a small random one, fetching.

The parity tests need ``embed fetch mobilestylegan-ffhq`` to have run (CI runs it); without the
files they are skipped, saying so. Their references, ``fixtures/mobilestylegan/golden.pt``, were
written by OpenVINO's runtime (see the README there).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from embedding.checkpoints import CheckpointError, load_discriminator, load_generator, mobilestylegan, save_generator
from embedding.edits import operations as edits
from embedding.fitting.run_folder import RunFolder
from embedding.generators.mobilestylegan import MobileStyleGAN
from embedding.generators.wavelets import inverse_haar
from embedding.latents import render_latents
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import Phase
from embedding.methods.pti import PTIModule
from tests.test_engine import fit, make_items

GOLDEN = Path(__file__).parent / "fixtures" / "mobilestylegan" / "golden.pt"
CROP = (slice(464, 496), slice(368, 400))


def tiny(seed: int = 0) -> MobileStyleGAN:
    """A random MobileStyleGAN rendering 32² from 8 W+ rows of 32, with noise strong enough to matter."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        g = MobileStyleGAN(z_dim=32, w_dim=32, channels=[16, 16, 8], mapping_layers=2)
        with torch.no_grad():
            for _, conv in g.synthesis.styled_convs():
                conv.noise.weight.fill_(0.3)
            g.mapping.w_avg.copy_(g.mapping.mean_latent(1000))
    return g.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def ffhq() -> MobileStyleGAN:
    try:
        return load_generator(mobilestylegan.NAME)
    except FileNotFoundError as e:
        pytest.skip(f"the {mobilestylegan.NAME} weights are not in the cache ({e}); run "
                    f"`{mobilestylegan.FETCH_COMMAND}` to test the port against OpenVINO's outputs")


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


def assert_matches(images: torch.Tensor, reference: dict) -> None:
    """Full-resolution images against the reference's 32² average, full-resolution crop and statistics."""
    small = F.adaptive_avg_pool2d(images, reference["small"].shape[-1])
    assert (small - reference["small"]).abs().max() < 1e-4
    assert (images[:, :, CROP[0], CROP[1]] - reference["crop"]).abs().max() < 1e-3
    flat = images.flatten(2)
    for stat, ours in (("mean", flat.mean(2)), ("std", flat.std(2)), ("min", flat.amin(2)), ("max", flat.amax(2))):
        assert torch.allclose(ours, reference[stat], atol=1e-3), stat


# ---- the FFHQ weights against OpenVINO ------------------------------------------------------------


def test_mapping_matches_openvino(ffhq, golden):
    with torch.no_grad():
        w = ffhq.mapping(golden["z"])
    assert w.shape == (len(golden["z"]), 23, 512)
    assert (w[:, 0] - golden["w"]).abs().max() < 1e-4


def test_synthesis_matches_openvino_for_one_style_and_for_23_distinct_rows(ffhq, golden):
    with torch.no_grad():
        one_style = ffhq.synthesis(golden["w"][:, None].expand(-1, ffhq.num_ws, -1))
        distinct = ffhq.synthesis(golden["ws"])
    assert one_style.shape == (len(golden["w"]), 3, 1024, 1024)
    assert_matches(one_style, golden["images"])
    assert_matches(distinct, golden["row_images"])


def test_ffhq_generator_is_cached_with_its_mean_latent(ffhq):
    stored = torch.load(mobilestylegan.folder() / mobilestylegan.W_AVG_FILE, weights_only=True)
    assert stored["samples"] == mobilestylegan.W_AVG_SAMPLES
    assert torch.equal(stored["w_avg"], ffhq.w_avg)
    strengths = ffhq.synthesis.noise_strengths()
    assert len(strengths) == 15 and bool((strengths > 0).all())


def test_embedding_fits_the_ffhq_generator_and_its_latents_rerender(ffhq, tmp_path):
    """One W+ step and one noise step at 1024² (MSE only), through the run folder."""
    with torch.no_grad():
        target = ffhq.synthesis(ffhq.w_avg.expand(1, ffhq.num_ws, -1), noise_mode="random").clamp(-1, 1)
    phases = [Phase("WI", steps=1, lr=0.05, mse1=1e-5), Phase("Mkn", steps=1, optimize="noise", lr=5.0, mse1=1e-5)]
    m = fit(EmbeddingModule(generator=mobilestylegan.NAME, phases=phases), make_items(target), tmp_path)
    path = RunFolder(tmp_path).latents_path("img0")
    assert torch.load(path, weights_only=True)["metadata"]["generator"] == mobilestylegan.NAME
    assert torch.allclose(render_latents(path), m.current_render(), atol=1e-4)


def test_codes_within_the_code_radius_render_images_and_far_codes_do_not(ffhq):
    """Why PTI's regulariser stays inside ``code_radius`` on this generator: 4 directions from the mean code."""
    away = ffhq.mapping(torch.randn(4, ffhq.z_dim, generator=torch.Generator().manual_seed(1)), None)[:, :1]
    away = (away - ffhq.w_avg) / (away - ffhq.w_avg).norm(dim=-1, keepdim=True)
    with torch.no_grad():
        peak = {r: ffhq.synthesis((ffhq.w_avg + r * away).expand(-1, ffhq.num_ws, -1), noise_mode="const")
                .flatten(1).abs().amax(1) for r in (ffhq.code_radius, 30.0)}
    assert bool((peak[ffhq.code_radius] < 4).all()) and float(peak[30.0].max()) > 20, peak


# ---- the architecture, on a small random network --------------------------------------------------


def test_inverse_haar_is_the_haar_synthesis_filter_bank():
    """The interleave equals transposed convolutions with the Haar filters (±1/√2), rows then columns; its
    hand-written gradient is right."""
    bands = torch.randn(2, 4 * 5, 6, 7)
    c = 5
    ll, (lh, hl, hh) = bands[:, :c], bands[:, c:].reshape(2, c, 3, 6, 7).unbind(2)
    s = 2 ** -0.5
    low, high = torch.tensor([s, s]), torch.tensor([s, -s])

    def up(x: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
        shape, stride = ((2, 1), (2, 1)) if dim == 2 else ((1, 2), (1, 2))
        return F.conv_transpose2d(x, taps.reshape(1, 1, *shape).expand(c, 1, *shape), stride=stride, groups=c)

    rows_low, rows_high = up(ll, low, 2) + up(lh, high, 2), up(hl, low, 2) + up(hh, high, 2)
    expected = up(rows_low, low, 3) + up(rows_high, high, 3)
    assert torch.allclose(inverse_haar(bands), expected, atol=1e-6)
    channels_last = bands.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(inverse_haar(channels_last), expected, atol=1e-6)
    assert torch.autograd.gradcheck(inverse_haar, (bands[:1, :8, :3, :3].double().requires_grad_(True),))


def test_small_mobilestylegan_offers_the_generator_interface():
    g = tiny()
    s = g.synthesis
    assert (g.num_ws, g.resolution) == (8, 32)
    assert [shape[-1] for shape in s.noise_shapes] == [4, 8, 8, 16, 16]
    assert s.noise_rows == [0, 2, 3, 5, 6]
    assert s.layer_names == ["conv1", "layers.0.conv1", "layers.0.conv2", "layers.1.conv1", "layers.1.conv2"]
    assert len(s.style_weights()) == g.num_ws
    ws = g.mapping(torch.randn(3, 32, generator=torch.Generator().manual_seed(1)))
    noise = s.random_noise(3, generator=torch.Generator().manual_seed(2))
    together = s(ws, noise=noise)
    alone = torch.cat([s(ws[i : i + 1], noise=[n[i : i + 1] for n in noise]) for i in range(3)])
    assert together.shape == (3, 3, 32, 32)
    assert torch.allclose(together, alone, atol=1e-5), "images of a batch are rendered independently"
    assert not torch.allclose(s(ws, noise_mode="const"), s(ws, noise_mode="none"))
    with pytest.raises(ValueError, match=r"ws must be \[B, 8, 32\]"):
        s(ws[:, :5])


def test_every_w_plus_row_changes_the_image():
    g = tiny()
    ws = g.w_avg.expand(1, g.num_ws, -1).clone().requires_grad_(True)
    with torch.enable_grad():
        g.synthesis(ws).square().sum().backward()
    assert bool((ws.grad[0].norm(dim=1) > 0).all())


def test_activation_edits_and_row_mixing_on_mobilestylegan():
    g = tiny()
    gen = torch.Generator().manual_seed(3)
    a, b = (edits.Code(g.w_avg + 0.5 * torch.randn(g.num_ws, g.w_dim, generator=gen),
                       g.synthesis.random_noise(1, generator=gen), name) for name in "ab")
    base = edits.render_codes(g, [a])
    assert torch.equal(edits.activation_edit(g, a, b, 4, "copy", torch.zeros(1, 1, 32, 32)), base)
    assert not torch.allclose(edits.activation_edit(g, a, b, "layers.0.conv2", "average", lam=0.5), base)
    mixed = edits.mix_rows(a, b, 4, g.synthesis.noise_rows)
    assert torch.equal(mixed.w_plus[:4], a.w_plus[:4]) and torch.equal(mixed.w_plus[4:], b.w_plus[4:])
    assert [m is n for m, n in zip(mixed.noise, a.noise, strict=True)] == [True, True, True, False, False]


def test_project_format_keeps_the_architecture(tmp_path):
    g = tiny()
    path = save_generator(g, tmp_path / "mobile.pt")
    loaded = load_generator(path)
    assert isinstance(loaded, MobileStyleGAN)
    ws = g.w_avg.expand(1, g.num_ws, -1)
    assert torch.equal(loaded.synthesis(ws), g.synthesis(ws))


def test_embedding_and_pti_fit_a_mobilestylegan(tmp_path):
    g = tiny()
    path = save_generator(g, tmp_path / "mobile.pt")
    with torch.no_grad():
        ws = g.w_avg + 0.5 * torch.randn(1, g.num_ws, g.w_dim, generator=torch.Generator().manual_seed(5))
        target = g.synthesis(ws, noise_mode="random").clamp(-1, 1)
    phases = [Phase("WI", steps=3, lr=0.05, mse1=1e-5), Phase("Mkn", steps=2, optimize="noise", lr=1.0, mse1=1e-5)]
    m = fit(EmbeddingModule(generator=str(path), phases=phases), make_items(target), tmp_path / "embed")
    assert torch.allclose(render_latents(RunFolder(tmp_path / "embed").latents_path("img0")), m.current_render(),
                          atol=1e-5)
    pti = fit(PTIModule(generator=str(path), pivot_steps=2, tune_steps=2, perceptual="vgg16-random"),
              make_items(target), tmp_path / "pti")
    assert torch.allclose(render_latents(RunFolder(tmp_path / "pti").latents_path("img0")), pti.current_render(),
                          atol=1e-3)


# ---- fetching and the cache --------------------------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv(mobilestylegan.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / mobilestylegan.NAME


def test_missing_weights_say_how_to_fetch_them(empty_cache):
    with pytest.raises(FileNotFoundError, match="embed fetch mobilestylegan-ffhq"):
        load_generator(mobilestylegan.NAME)


def test_altered_weights_are_refused_naming_the_file(empty_cache):
    empty_cache.mkdir(parents=True)
    for name in mobilestylegan.FILES:
        (empty_cache / name).write_bytes(b"not the network")
    with pytest.raises(CheckpointError, match=r"Network\.xml: SHA-256 .*truncated or altered"):
        load_generator(mobilestylegan.NAME)


def test_fetch_refuses_a_wheel_that_is_not_random_face(empty_cache, tmp_path):
    wheel = tmp_path / "random_face-2021.7.21.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in mobilestylegan.FILES:
            archive.writestr(f"random_face/data/{name}", b"something else")
    with pytest.raises(CheckpointError, match="random_face-2021.7.21.1-py3-none-any.whl.*SHA-256"):
        mobilestylegan.fetch(wheel)
    assert not empty_cache.exists(), "nothing is installed from a wrong wheel"


def test_what_needs_a_discriminator_refuses_clearly():
    with pytest.raises(FileNotFoundError, match="generator alone: it comes with no discriminator"):
        load_discriminator(mobilestylegan.NAME)
    from embedding.methods.dgp import DGPModule

    with pytest.raises(ValueError, match="comes without a discriminator"):
        DGPModule(generator=mobilestylegan.NAME)
