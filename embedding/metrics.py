"""Image quality measures shared by runs, commands and benchmarks: LPIPS, the field's perceptual distance.

Inversion papers and toolboxes report LPIPS with AlexNet at 256² (FFHQ's 1024² images are scored
after resizing to 256²). :func:`lpips_metric` does the same: larger images are resized down to
256² (bilinear, antialiased) first, smaller ones are scored at their own size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .lpips import LPIPS, Net, load_lpips

METRIC_SIZE = 256
_NETWORKS: dict[tuple[str, torch.device], LPIPS] = {}


def lpips(a: Tensor, b: Tensor, net: Net = "alex") -> Tensor:
    """Per-image LPIPS v0.1 distance ``[N]`` between images ``[N, 3, H, W]`` in [-1, 1] (0: the same image).

    Differentiable (a loss term can use it); ``net`` is ``alex`` (the field's metric) or ``vgg``.
    The network is loaded once per device and kept.
    """
    key = (net, a.device)
    if key not in _NETWORKS:
        _NETWORKS[key] = load_lpips(net).to(a.device)
    return _NETWORKS[key](a.float(), b.float())


def at_metric_size(images: Tensor) -> Tensor:
    """``images`` resized (bilinear, antialiased) so that neither side exceeds 256 pixels; smaller ones unchanged."""
    height, width = images.shape[-2:]
    longest = max(height, width)
    if longest <= METRIC_SIZE:
        return images
    size = (round(height * METRIC_SIZE / longest), round(width * METRIC_SIZE / longest))
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def lpips_metric(render: Tensor, target: Tensor, net: Net = "alex") -> Tensor:
    """LPIPS as reported: both images at no more than 256² (:func:`at_metric_size`), without gradients."""
    with torch.no_grad():
        return lpips(at_metric_size(render), at_metric_size(target), net)
