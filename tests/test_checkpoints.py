"""Checkpoint loading: round trips through every format, and clear, safe failures on bad files."""

from __future__ import annotations

import argparse
import os
import pickle
import re
import sys
from pathlib import Path

import pytest
import torch

import embedding.checkpoints as checkpoints_module
from datamodules.training import read_crop
from embedding.checkpoints import (
    CheckpointError,
    load_discriminator,
    load_generator,
    rosinality,
    save_discriminator,
    save_generator,
)
from embedding.generators import Discriminator, Generator
from tests.nvidia_pickle import executed_marker, module_src, write_nvidia_pickle
from tests.photos import MEAN_FACE


def _ws(generator: Generator, seed: int = 0) -> torch.Tensor:
    return generator.mapping(torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(seed)))


def assert_same_generator(loaded: Generator, original: Generator) -> None:
    """Same ``w_avg`` and the same image for the same W+ (the checkpoint's const noise)."""
    ws = _ws(original)
    assert (loaded.synthesis(ws) - original.synthesis(ws)).abs().max() <= 1e-6
    assert torch.equal(loaded.w_avg, original.w_avg)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def assert_same_discriminator(loaded: Discriminator, original: Discriminator) -> None:
    img = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert (loaded(img) - original(img)).abs().max() <= 1e-6


def _raises_naming(path: Path, error: type[Exception] = CheckpointError, match: str | None = None):
    """``pytest.raises`` that also requires the message to name ``path``."""
    return pytest.raises(error, match=rf"(?s){re.escape(str(path))}.*{match or ''}")


# ---------------------------------------------------------------------------------------------- project format


def test_project_format_round_trip(tiny_generator, tiny_discriminator, tiny_generator_file, tmp_path):
    assert tiny_generator_file.with_suffix(".json").is_file()
    assert_same_generator(load_generator(tiny_generator_file), tiny_generator)
    d_path = save_discriminator(tiny_discriminator, tmp_path / "d.pt")
    assert_same_discriminator(load_discriminator(d_path), tiny_discriminator)


def test_project_format_fp16(tiny_generator, tiny_discriminator, tmp_path):
    g_path = save_generator(tiny_generator, tmp_path / "g16.pt", dtype=torch.float16)
    d_path = save_discriminator(tiny_discriminator, tmp_path / "d16.pt", dtype=torch.float16)
    assert all(v.dtype == torch.float16 for v in torch.load(g_path, weights_only=True).values())
    loaded = load_generator(g_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    ws = _ws(tiny_generator)
    reference = tiny_generator.synthesis(ws)
    assert (loaded.synthesis(ws) - reference).abs().max() < 5e-3 * reference.abs().max()
    img = torch.randn(4, 3, 32, 32)
    assert torch.allclose(load_discriminator(d_path)(img), tiny_discriminator(img), atol=1e-3)


def test_project_format_keeps_the_kind(tiny_generator_file, tiny_discriminator, tmp_path):
    with _raises_naming(tiny_generator_file, match="holds a generator and no discriminator was saved beside it"):
        load_discriminator(tiny_generator_file)
    discriminator = save_discriminator(tiny_discriminator, tmp_path / "d.pt")
    with _raises_naming(discriminator, match="'discriminator', not a 'generator'"):
        load_generator(discriminator)


def _edit_state(path: Path, edit) -> None:
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def test_project_format_missing_key(tiny_generator_file):
    _edit_state(tiny_generator_file, lambda s: s.pop("synthesis.b8.conv0.affine.weight"))
    with _raises_naming(tiny_generator_file, match="missing key 'synthesis.b8.conv0.affine.weight'"):
        load_generator(tiny_generator_file)


def test_project_format_shape_mismatch(tiny_generator_file):
    _edit_state(tiny_generator_file, lambda s: s.update({"synthesis.b16.conv1.weight": torch.zeros(32, 32, 1, 1)}))
    with _raises_naming(tiny_generator_file, match="shape mismatch for 'synthesis.b16.conv1.weight'"):
        load_generator(tiny_generator_file)


# --------------------------------------------------------------------------------------------- NVIDIA pickles


def test_nvidia_pickle_round_trip(make_generator, tiny_discriminator, tmp_path):
    g, g_ema = make_generator(seed=1), make_generator(seed=2)
    path = write_nvidia_pickle(tmp_path / "network-snapshot.pkl", g, tiny_discriminator, G_ema=g_ema)
    assert_same_generator(load_generator(path), g_ema)
    assert_same_generator(load_generator(path, network="G"), g)
    assert_same_discriminator(load_discriminator(path), tiny_discriminator)


def test_stylegan3_style_kwargs(tiny_generator, tiny_discriminator, tmp_path):
    path = write_nvidia_pickle(tmp_path / "sg3-stylegan2.pkl", tiny_generator, tiny_discriminator,
                               variant="stylegan3-kwargs")
    assert_same_generator(load_generator(path), tiny_generator)


def test_missing_network_in_pickle(tiny_generator, tiny_discriminator, tmp_path):
    path = write_nvidia_pickle(tmp_path / "net.pkl", tiny_generator, tiny_discriminator)
    with _raises_naming(path, match="no network 'G_avg'.*'D', 'G', 'G_ema'"):
        load_generator(path, network="G_avg")


def test_stylegan3_synthesis_is_unsupported(tiny_generator, tiny_discriminator, tmp_path):
    path = write_nvidia_pickle(tmp_path / "sg3.pkl", tiny_generator, tiny_discriminator,
                               variant="stylegan3-synthesis")
    with _raises_naming(path, match="unsupported architecture.*StyleGAN3"):
        load_generator(path)


@pytest.mark.parametrize(("option", "match"), [
    ({"fancy_option": 3}, "unknown synthesis option 'fancy_option'"),
    ({"architecture": "resnet"}, "architecture='resnet'.*'skip'"),
])
def test_unknown_synthesis_option(tiny_generator, tiny_discriminator, tmp_path, option, match):
    path = write_nvidia_pickle(tmp_path / "net.pkl", tiny_generator, tiny_discriminator,
                               extra_synthesis_kwargs=option)
    with _raises_naming(path, match=f"unsupported architecture.*{match}"):
        load_generator(path)


class _Hostile:
    """Pickles as a call that creates ``marker`` when unpickled by a plain unpickler."""

    def __init__(self, marker: Path, how: str) -> None:
        self.marker, self.how = marker, how

    def __reduce__(self):
        if self.how == "os.system":
            return os.system, (f"touch {self.marker}",)
        return eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)


@pytest.mark.parametrize(("how", "refused"), [("os.system", f"{os.system.__module__}.system"),
                                             ("eval", "builtins.eval")])
def test_hostile_pickle_is_refused(tmp_path, how, refused):
    marker, path = tmp_path / "pwned", tmp_path / "hostile.pkl"
    path.write_bytes(pickle.dumps({"G_ema": _Hostile(marker, how)}))
    with _raises_naming(path, match=f"refused.*{refused}"):
        load_generator(path)
    assert not marker.exists()


def test_hostile_pt_is_refused(tmp_path):
    marker, path = tmp_path / "pwned", tmp_path / "hostile.pt"
    torch.save({"g_ema": _Hostile(marker, "os.system")}, path)
    with _raises_naming(path, match="system"):
        load_generator(path)
    assert not marker.exists()


def test_module_src_is_never_executed(tiny_generator, tiny_discriminator, tmp_path):
    path = write_nvidia_pickle(tmp_path / "net.pkl", tiny_generator, tiny_discriminator)
    assert module_src(path).encode() in path.read_bytes()
    assert not {"torch_utils.persistence", "dnnlib.util"} & set(sys.modules)
    load_generator(path)
    load_discriminator(path)
    assert not executed_marker(path).exists()
    with pytest.raises(RuntimeError, match="module_src of a network pickle was executed"):
        exec(module_src(path), {})
    assert executed_marker(path).exists()


# ------------------------------------------------------------------------------------------ rosinality files


def _to_rosinality_generator(g: Generator) -> dict:
    return rosinality.from_generator_state(g.state_dict(), g.mapping.num_layers, g.synthesis.block_resolutions)


def _to_rosinality_discriminator(d: Discriminator) -> dict:
    return rosinality.from_discriminator_state(d.state_dict(), d.img_resolution, d.block_resolutions)


@pytest.fixture
def rosinality_file(tiny_generator, tiny_discriminator, make_generator, tmp_path) -> Path:
    """A rosinality training checkpoint: ``tiny_generator`` as ``g_ema``, another generator as ``g``."""
    path = tmp_path / "550000.pt"
    torch.save({"g": _to_rosinality_generator(make_generator(seed=3)),
                "g_ema": _to_rosinality_generator(tiny_generator), "latent_avg": tiny_generator.w_avg.clone(),
                "d": _to_rosinality_discriminator(tiny_discriminator), "args": argparse.Namespace(size=32)}, path)
    return path


def test_rosinality_round_trip(tiny_generator, tiny_discriminator, make_generator, rosinality_file):
    assert_same_generator(load_generator(rosinality_file), tiny_generator)
    ws = _ws(tiny_generator)
    g = make_generator(seed=3)
    assert (load_generator(rosinality_file, network="G").synthesis(ws) - g.synthesis(ws)).abs().max() <= 1e-6
    assert_same_discriminator(load_discriminator(rosinality_file), tiny_discriminator)


def test_rosinality_without_latent_avg_estimates_it(tiny_generator, tmp_path):
    path = tmp_path / "no_avg.pt"
    torch.save({"g_ema": _to_rosinality_generator(tiny_generator)}, path)
    loaded = load_generator(path)
    ws = _ws(tiny_generator)
    assert (loaded.synthesis(ws) - tiny_generator.synthesis(ws)).abs().max() <= 1e-6
    z = torch.randn(20_000, 32, generator=torch.Generator().manual_seed(1))
    mean = tiny_generator.mapping(z)[:, 0].mean(dim=0)
    spread = tiny_generator.mapping(z)[:, 0].std(dim=0)
    assert ((loaded.w_avg - mean).abs() < 0.05 * spread).all()


def test_rosinality_file_without_generator(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, path)
    with _raises_naming(path, match="rosinality"):
        load_generator(path)
    with _raises_naming(path, match="no discriminator"):
        load_discriminator(path)


# ------------------------------------------------------------------------------------------- unreadable files


@pytest.mark.parametrize("load", [load_generator, load_discriminator])
def test_missing_file(tmp_path, load):
    path = tmp_path / "nowhere.pkl"
    with _raises_naming(path, FileNotFoundError):
        load(path)


@pytest.mark.parametrize("suffix", [".pkl", ".pt"])
def test_zero_byte_file(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with _raises_naming(path):
        load_generator(path)


@pytest.mark.parametrize("suffix", [".pkl", ".pt"])
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).tolist()))
    with _raises_naming(path):
        load_generator(path)


def test_truncated_pickle(tiny_generator, tiny_discriminator, tmp_path):
    path = write_nvidia_pickle(tmp_path / "net.pkl", tiny_generator, tiny_discriminator)
    data = path.read_bytes()
    for fraction in (0.01, 0.5, 0.99):
        path.write_bytes(data[: int(len(data) * fraction)])
        with _raises_naming(path, match="truncated"):
            load_generator(path)


def test_truncated_rosinality_pt(rosinality_file):
    rosinality_file.write_bytes(rosinality_file.read_bytes()[:-1000])
    with _raises_naming(rosinality_file, match="truncated"):
        load_generator(rosinality_file)


def test_truncated_project_pt(tiny_generator_file):
    tiny_generator_file.write_bytes(tiny_generator_file.read_bytes()[:-1000])
    with _raises_naming(tiny_generator_file, match="truncated"):
        load_generator(tiny_generator_file)


# ------------------------------------------------------------------------------------------- embedded default


def test_missing_default_generator_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints_module, "default_path", lambda kind: tmp_path / f"no_{kind}.pt")
    with pytest.raises(FileNotFoundError, match="default generator is missing.*pass the path of a checkpoint"):
        load_generator("default")


def test_default_generator_is_a_trained_face_model():
    g = load_generator("default")
    assert (g.img_resolution, g.num_ws) == (64, 10)
    z = torch.randn(64, g.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fakes = g.synthesis(g.mapping(z)).clamp(-1, 1)
    reals_mean = read_crop(MEAN_FACE, None, 64).float() / 127.5 - 1  # the average of 64 real CelebA face squares
    # A generator that learned CelebA's face crops reproduces their average layout (face, hair, background).
    average = torch.corrcoef(torch.stack([fakes.mean(0).flatten(), reals_mean.flatten()]))[0, 1]
    assert average > 0.7
    d = load_discriminator("default")
    assert d(fakes).shape == (64, 1)
