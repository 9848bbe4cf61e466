"""Shared fixtures: a tiny random StyleGAN2 generator and discriminator (32², 32 channels) and their files."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from embedding.checkpoints import save_generator
from embedding.generators import Discriminator, Generator

TINY_RESOLUTION = 32
TINY_G_KWARGS = dict(z_dim=32, c_dim=0, w_dim=32, img_resolution=TINY_RESOLUTION, img_channels=3,
                     mapping_kwargs=dict(num_layers=2), synthesis_kwargs=dict(channel_base=1024, channel_max=32))
TINY_D_KWARGS = dict(c_dim=0, img_resolution=TINY_RESOLUTION, img_channels=3, channel_base=1024, channel_max=32)


@torch.no_grad()
def randomise(net: nn.Module, seed: int) -> nn.Module:
    """Give every tensor that starts out constant (biases, noise strengths, ``w_avg``) a random value.

    Weights, ``const`` and ``noise_const`` are random from construction; affine biases stay near
    their initial 1 so the styles keep their usual scale.
    """
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in net.state_dict(keep_vars=True).items():
        leaf = name.rsplit(".", 1)[-1]
        noise = torch.randn(tensor.shape, generator=gen)
        if name.endswith("affine.bias"):
            tensor.copy_(1 + 0.2 * noise)
        elif leaf == "bias":
            tensor.copy_(0.2 * noise)
        elif leaf == "noise_strength":
            tensor.copy_(0.5 * noise)
        elif leaf == "w_avg":
            tensor.copy_(noise)
    return net


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped where PyTorch sees no CUDA device."""
    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


def build_generator(seed: int = 0, **overrides) -> Generator:
    """A tiny generator (``TINY_G_KWARGS`` updated by ``overrides``), seeded, randomised, in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        generator = Generator(**{**TINY_G_KWARGS, **overrides})
    return randomise(generator, seed).eval()


def build_discriminator(seed: int = 0, **overrides) -> Discriminator:
    """A tiny discriminator (``TINY_D_KWARGS`` updated by ``overrides``), seeded, randomised, in eval mode."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        discriminator = Discriminator(**{**TINY_D_KWARGS, **overrides})
    return randomise(discriminator, seed).eval()


@pytest.fixture
def tiny_generator() -> Generator:
    """A fresh 32² generator (z_dim = w_dim = 32, 2 mapping layers, 32 channels), the same in every test."""
    return build_generator()


@pytest.fixture
def tiny_discriminator() -> Discriminator:
    """A fresh 32² residual discriminator with 32 channels, the same in every test."""
    return build_discriminator(seed=1)


@pytest.fixture
def make_generator() -> Callable[..., Generator]:
    """``build_generator(seed=0, **overrides)``: tiny generators with other seeds, resolutions or ``c_dim``."""
    return build_generator


@pytest.fixture
def tiny_generator_file(tiny_generator: Generator, tmp_path: Path) -> Path:
    """``tiny_generator`` saved in the project's format (``tiny.pt`` + ``tiny.json``) under ``tmp_path``."""
    return save_generator(tiny_generator, tmp_path / "tiny.pt")


@pytest.fixture(autouse=True)
def signal_handlers_left_as_found() -> Iterator[None]:
    """Every test leaves the SIGINT and SIGTERM handlers as it found them (a fit restores its own)."""
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    assert {s: signal.getsignal(s) for s in before} == before, "the test left its own signal handlers installed"
