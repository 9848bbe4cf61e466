"""Frozen VGG-16 feature extractor for the perceptual and style losses, and its weight loading.

Weights: ``imagenet``, the shipped copy of torchvision's ImageNet VGG-16 (:mod:`embedding.imagenet`);
``torchvision``, torchvision's own file from the torch hub cache (downloaded when missing and online);
a path to a VGG-16 state dict; or ``random`` (seeded, for tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .imagenet import (
    FETCH_COMMAND,
    SHIPPED,
    SHIPPED_DEPTH,
    check_state,
    fetched_path,
    read_state_dict,
    shipped_path,
    shipped_state,
    tap,
    vgg16_trunk,
)

logger = logging.getLogger(__name__)

TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
# Index in `torchvision.models.vgg16().features` (and `vgg16_trunk()`) of the ReLU that follows each named convolution.
LAYER_INDEX: dict[str, int] = {
    "conv1_1": 1, "conv1_2": 3,
    "conv2_1": 6, "conv2_2": 8,
    "conv3_1": 11, "conv3_2": 13, "conv3_3": 15,
    "conv4_1": 18, "conv4_2": 20, "conv4_3": 22,
    "conv5_1": 25, "conv5_2": 27, "conv5_3": 29,
}  # fmt: skip

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


DOWN_TO = 256  # without an explicit resize, larger images are seen at this size


class VGG16Features(nn.Module):
    """VGG-16 convolutional stack, frozen, returning post-ReLU activations of named layers.

    Starts with deterministic random weights (seed 0); `load_vgg16` puts real weights in.
    `features` is laid out as torchvision's `vgg16().features`, so its state dicts load unchanged.
    Inputs are RGB in [-1, 1] (the generator's range); they are mapped to [0, 1], resized
    (bilinear, antialiased) to `resize`² when it is given, else down to 256² when larger (as
    Image2StyleGAN and NVIDIA's projector feed VGG-16 1024² faces), and normalised with the
    ImageNet mean/std that torchvision's weights expect.
    """

    def __init__(self, resize: int | None = None) -> None:
        super().__init__()
        self.features = vgg16_trunk()
        self.resize = resize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self._reset_random(seed=0)
        self.requires_grad_(False)
        self.eval()

    def _reset_random(self, seed: int = 0) -> None:
        """Fill the weights with a seeded Kaiming init, so random-weight runs are reproducible."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in self.features:
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu",
                                            generator=generator)
                    module.bias.zero_()

    def _preprocess(self, x: Tensor) -> Tensor:
        """Map [-1, 1] RGB to the resized, ImageNet-normalised input VGG-16 was trained on."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG-16 expects RGB images [B, 3, H, W], got shape {tuple(x.shape)}")
        x = (x + 1) / 2
        size = self.resize or (DOWN_TO if max(x.shape[-2:]) > DOWN_TO else None)
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def forward(self, x: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """Post-ReLU activations of `layers`, running the network only as deep as the deepest one."""
        names = list(dict.fromkeys(layers))
        if not names:
            return {}
        indices = [_layer_index(name) for name in names]
        if max(indices) >= len(self.features):
            deepest = names[indices.index(max(indices))]
            raise ValueError(f"VGG-16 layer {deepest} is beyond the ImageNet layers at hand (conv1_1 to conv4_3 ship "
                             f"with the project): get the rest once with `{FETCH_COMMAND}`")
        return dict(zip(names, tap(self.features, self._preprocess(x), indices), strict=True))


def _layer_index(name: str) -> int:
    """Index of a named layer's ReLU, with an error listing the valid names."""
    if name not in LAYER_INDEX:
        raise ValueError(f"unknown VGG-16 layer {name!r}; expected one of {', '.join(LAYER_INDEX)}")
    return LAYER_INDEX[name]


def load_vgg16(weights: str | os.PathLike = "imagenet", resize: int | None = None) -> VGG16Features:
    """VGG-16 features with `weights`: "imagenet" (shipped to conv4_3; the rest once fetched), "torchvision"
    (hub cache), "random", or a path."""
    model = VGG16Features(resize=resize)
    if weights == "random":
        logger.warning("VGG-16 has random weights: perceptual and style losses are not meaningful")
        return model
    if weights == "imagenet":
        depth = None if fetched_path("vgg16").is_file() else SHIPPED_DEPTH["vgg16"]
        model.features = model.features[:depth]
        state, source = shipped_state("vgg16", depth), shipped_path("vgg16")
    elif weights == "torchvision":
        state, source = _torchvision_state_dict()
    else:
        source = Path(weights)
        state = read_state_dict(source, "VGG-16")
    model.features.load_state_dict(_features_state(state, source, model.features.state_dict()))
    return model


def weights_source(weights: str | os.PathLike) -> str:
    """Where `load_vgg16(weights)` takes its weights from, for the log and each latents file."""
    if weights == "imagenet":
        return SHIPPED
    if weights == "torchvision":
        return f"ImageNet: {imagenet_cache_path()}"
    return "random weights, seed 0" if weights == "random" else os.fspath(Path(weights))


def imagenet_cache_path() -> Path:
    """Where torch hub keeps (and `load_vgg16("torchvision")` looks for) torchvision's VGG-16 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(TORCHVISION_URL).name


def _torchvision_state_dict() -> tuple[Mapping[str, Tensor], Path]:
    """torchvision's ImageNet VGG-16 state dict, from the hub cache or, failing that, a download."""
    path = imagenet_cache_path()
    if path.is_file():
        return read_state_dict(path, "VGG-16"), path
    try:
        state = torch.hub.load_state_dict_from_url(TORCHVISION_URL, map_location="cpu", weights_only=True)
    except Exception as err:
        raise FileNotFoundError(
            f"torchvision's VGG-16 weights are not in the torch hub cache ({path}) and downloading them "
            f"failed ({type(err).__name__}: {err}). Either download {TORCHVISION_URL} on a machine with internet "
            f"access and copy it to {path}, or use the shipped copy of the same weights (`vgg_weights: imagenet`)."
        ) from err
    return state, path


def _features_state(
    state: Mapping[str, Tensor], source: Path, expected: Mapping[str, Tensor]
) -> dict[str, Tensor]:
    """The `features` part of a full or features-only VGG-16 state dict, checked key by key."""
    prefix = "features."
    if any(key.startswith(prefix) for key in state):
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    return check_state(state, expected, source, "a VGG-16 state dict")
