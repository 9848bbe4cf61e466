"""Perceptual networks for Eq. 1's perceptual and style terms, chosen by name.

| name | features | needs |
|---|---|---|
| ``vgg16`` | torchvision's ImageNet VGG-16, conv1_1, conv1_2, conv2_2, conv3_3 (the paper's) | the ImageNet file |
| ``discriminator`` | every block of the generator's own discriminator (as Deep Generative Prior) | a D beside G |
| ``face`` | the face descriptor's stem and four residual stages (dlib's ResNet, shipped) | nothing; faces only |
| ``vgg16-random`` | VGG-16 with seeded random weights: a stand-in for tests, never a default | nothing |

``auto`` (the default) takes ``vgg16`` when the ImageNet file is present (or a VGG-16 file is
given), else ``discriminator``, the better of the offline networks on held-out photos (README),
and says so in the log. Other networks (a face descriptor, say) join with :func:`register`.

Every network maps images in [-1, 1] to named feature maps; its ``feature_scale`` puts the
features in units where the recipes' perceptual weights keep their balance against MSE.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from .losses import PAPER_FEATURE_SCALE, PERCEPT_LAYERS, STYLE_LAYERS

logger = logging.getLogger(__name__)

# Discriminator features are multiplied by this so that the recipes' weights (percept = mse1 = 1e-5) keep
# VGG-16's balance: fitting 16 held-out CelebA photos with the default generator from the mean latent, the
# perceptual term starts at 6% of the MSE term, as VGG-16's in the paper's units does (5%; measured with
# random weights, the ImageNet file not being at hand).
DISCRIMINATOR_FEATURE_SCALE = 30.0
# The same balance for the face descriptor's maps, measured the same way (benchmarks/perceptual_networks.py).
FACE_FEATURE_SCALE = 7.5


@dataclass(frozen=True)
class Request:
    """What a network may be built from: the run's generator (and discriminator) source, VGG-16 settings."""

    generator: str = "default"
    vgg_weights: str = "imagenet"
    vgg_resize: int | None = None
    discriminator: str | None = None  # None: the generator's source (NVIDIA and rosinality files hold both)


@dataclass(frozen=True)
class PerceptualNetwork:
    """A frozen feature extractor ``features(images, layers) -> {layer: [B, C, H, W]}`` and how to use it."""

    name: str
    features: nn.Module
    percept_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    feature_scale: float
    source: str  # where its weights came from, for the log and each latents file

    def describe(self) -> str:
        return f"{self.name} ({self.source})"


Builder = Callable[[Request], PerceptualNetwork]
_BUILDERS: dict[str, Builder] = {}


def register(name: str, builder: Builder) -> None:
    """Make ``name`` a choice of ``model.perceptual``; ``builder`` makes the network for a run."""
    _BUILDERS[name] = builder


def names() -> list[str]:
    """The registered network names, plus ``auto``."""
    return ["auto", *_BUILDERS]


def load_perceptual(name: str, request: Request) -> PerceptualNetwork:
    """The network called ``name`` (``auto``: see the module docstring), frozen and in eval mode."""
    if name == "auto":
        name = _auto(request)
    if name not in _BUILDERS:
        raise ValueError(f"unknown perceptual network {name!r}; choose one of {', '.join(names())}")
    network = _BUILDERS[name](request)
    network.features.requires_grad_(False).eval()
    return network


def _auto(request: Request) -> str:
    """``vgg16`` with real weights at hand, explicit random VGG when asked for, else ``discriminator`` (``face`` for
    a generator that comes without one)."""
    from .checkpoints import GENERATOR_ONLY
    from .vgg import imagenet_cache_path

    if request.vgg_weights == "random":
        return "vgg16-random"
    if request.vgg_weights != "imagenet" or imagenet_cache_path().is_file():
        return "vgg16"
    if request.discriminator is None and request.generator in GENERATOR_ONLY:
        logger.warning("perceptual loss: no ImageNet VGG-16 file at %s and %s has no discriminator, so the face "
                       "descriptor gives the features (model.perceptual: face)", imagenet_cache_path(),
                       request.generator)
        return "face"
    logger.warning("perceptual loss: the ImageNet VGG-16 file is not at %s, so the generator's own discriminator "
                   "gives the features (model.perceptual: discriminator). For the paper's VGG-16, copy "
                   "vgg16-397923af.pth there or pass --model.vgg_weights /path/to/vgg16.pth",
                   imagenet_cache_path())
    return "discriminator"


class NamedFeatures(nn.Module):
    """Adapts ``fn(images) -> list[Tensor]`` (a face descriptor's maps, say) to named layers ``f0``, ``f1``, ..."""

    def __init__(self, fn: Callable[[Tensor], Sequence[Tensor]], module: nn.Module | None = None) -> None:
        super().__init__()
        self.fn = fn
        self.module = module  # holds the network's weights, so .to(device) moves them

    def forward(self, images: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        wanted = set(layers)
        return {f"f{i}": f for i, f in enumerate(self.fn(images)) if f"f{i}" in wanted}


class DiscriminatorFeatures(nn.Module):
    """Block outputs of a StyleGAN2 discriminator for images in [-1, 1], resized (Lanczos) to its input size."""

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator

    @property
    def layer_names(self) -> list[str]:
        return self.discriminator.feature_names

    def forward(self, images: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        from .degradations import same_size

        d, wanted = self.discriminator, set(layers)
        unknown = wanted - set(self.layer_names)
        if unknown:
            raise ValueError(f"unknown discriminator block(s) {sorted(unknown)}; blocks are {self.layer_names}")
        x, img, out = None, same_size(images, d.img_resolution), {}
        for name in self.layer_names:
            if not wanted - out.keys():
                break
            x = getattr(d, name)(x, img)
            if name in wanted:
                out[name] = x
        return out


def _vgg16(request: Request) -> PerceptualNetwork:
    from .vgg import imagenet_cache_path, load_vgg16

    weights = request.vgg_weights
    if weights == "random":
        raise ValueError("vgg16 with random weights is `model.perceptual: vgg16-random`, a stand-in for tests")
    source = str(imagenet_cache_path()) if weights == "imagenet" else os.fspath(Path(weights))
    return PerceptualNetwork("vgg16", load_vgg16(weights, request.vgg_resize), PERCEPT_LAYERS,
                             STYLE_LAYERS, PAPER_FEATURE_SCALE, source)


def _vgg16_random(request: Request) -> PerceptualNetwork:
    from .vgg import load_vgg16

    return PerceptualNetwork("vgg16-random", load_vgg16("random", request.vgg_resize), PERCEPT_LAYERS,
                             STYLE_LAYERS, PAPER_FEATURE_SCALE, "random weights, seed 0")


def _discriminator(request: Request) -> PerceptualNetwork:
    """All blocks for the perceptual term; the block at a quarter of the input size (as conv3_3) for style."""
    from .checkpoints import load_discriminator

    source = request.discriminator or request.generator
    try:
        d = load_discriminator(source)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"perceptual network 'discriminator' found no discriminator in {source} ({err}); "
                         "pass one with --model.discriminator, or choose --model.perceptual") from err
    features = DiscriminatorFeatures(d)
    blocks = tuple(features.layer_names)
    return PerceptualNetwork("discriminator", features, blocks, blocks[1:2] or blocks[:1],
                             DISCRIMINATOR_FEATURE_SCALE, f"D of {source}")


def _face(request: Request) -> PerceptualNetwork:
    """The face descriptor's maps at 150² (35², 35², 17², 8², 2²); the 17² stage for style."""
    from .faces.descriptor import face_features

    layers = tuple(f"f{i}" for i in range(5))
    return PerceptualNetwork("face", NamedFeatures(face_features), layers, ("f2",), FACE_FEATURE_SCALE,
                             "face-api 1.7.15 face_recognition (shipped)")


register("vgg16", _vgg16)
register("discriminator", _discriminator)
register("face", _face)
register("vgg16-random", _vgg16_random)
