"""LPIPS v0.1 (Zhang et al. 2018): the learned perceptual distance between two images, with AlexNet or VGG-16.

Both images go through an ImageNet network (inputs in [-1, 1], shifted and scaled per channel to
the network's normalisation). At each of five layers the features are unit-normalised over
channels, their squared difference is weighted per channel by a learned 1×1 convolution (the
"linear head") and averaged over the positions; the distance is the sum over the layers. The
weights are the shipped ones (:mod:`embedding.imagenet`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .imagenet import LPIPS_CHANNELS, TRUNKS, shipped_state, tap

Net = Literal["alex", "vgg"]
NETS: dict[str, str] = {"alex": "alexnet", "vgg": "vgg16"}
# The layers compared: AlexNet's five ReLUs; VGG-16's conv1_2, conv2_2, conv3_3, conv4_3, conv5_3 ReLUs.
TAPS = {"alexnet": (1, 4, 7, 9, 11), "vgg16": (3, 8, 15, 22, 29)}
# LPIPS's input scaling: ImageNet's per-channel mean and std, in [-1, 1] units.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
MIN_SIZE = {"alexnet": 31, "vgg16": 16}  # the smallest input whose deepest compared layer is not empty


def unit_normalise(features: Tensor, eps: float = 1e-10) -> Tensor:
    """``features`` divided by their Euclidean norm over channels (plus ``eps``), at every position.

    The norm's gradient is taken as zero where a position's features are all zero (after a ReLU,
    often), where ``sqrt`` has none; the value is LPIPS's everywhere.
    """
    norm = features.pow(2).sum(1, keepdim=True).clamp_min(1e-30).sqrt()
    return features / (norm + eps)


class LPIPS(nn.Module):
    """The LPIPS distance ``[N]`` between images ``[N, 3, H, W]`` in [-1, 1], frozen; ``net`` ``alex`` or ``vgg``."""

    def __init__(self, net: Net = "alex") -> None:
        super().__init__()
        if net not in NETS:
            raise ValueError(f"unknown LPIPS network {net!r}; choose one of {', '.join(NETS)}")
        self.net = NETS[net]
        self.features = TRUNKS[self.net]()
        for k, channels in enumerate(LPIPS_CHANNELS[self.net]):
            self.add_module(f"lin{k}", nn.Conv2d(channels, 1, 1, bias=False))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    def layers(self, images: Tensor) -> list[Tensor]:
        """The five compared feature maps of ``images`` (after the input scaling)."""
        return tap(self.features, (images - self.shift) / self.scale, TAPS[self.net])

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape or a.ndim != 4 or a.shape[1] != 3:
            raise ValueError(f"LPIPS compares two RGB batches [N, 3, H, W] of one shape, got {tuple(a.shape)} "
                             f"and {tuple(b.shape)}")
        if min(a.shape[-2:]) < MIN_SIZE[self.net]:
            raise ValueError(f"LPIPS with {self.net} needs images of at least {MIN_SIZE[self.net]}² pixels, got "
                             f"{a.shape[-2]}×{a.shape[-1]}")
        total = a.new_zeros(a.shape[0])
        for k, features in enumerate(self.layers(torch.cat([a, b]))):
            fa, fb = unit_normalise(features).chunk(2)
            total = total + getattr(self, f"lin{k}")((fa - fb).pow(2)).mean((1, 2, 3))
        return total


def load_lpips(net: Net = "alex") -> LPIPS:
    """LPIPS with the ImageNet trunk and v0.1 heads of ``net`` (``vgg``: fetched once, see
    :func:`embedding.imagenet.shipped_state`), frozen and in evaluation mode."""
    model = LPIPS(net)
    model.load_state_dict(shipped_state(model.net))
    return model.requires_grad_(False).eval()
