"""TensorFlow-style layers in PyTorch: 'SAME' padding (extra pixel bottom/right), HWIO filters,
separable convolutions, and the input preprocessing shared by the face-api networks."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MEAN_RGB = (122.782, 117.001, 104.298)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding of one axis: (before, after), the odd pixel going after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """Pad an NCHW tensor the way TF 'SAME' does before a ``kernel``/``stride`` window."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def max_pool_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF ``maxPool(..., 'same')``: padded cells never win."""
    return F.max_pool2d(pad_same(x, kernel, stride, value=-math.inf), kernel, stride)


def leaky(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with face-api's slope (0.1 rounded to float32)."""
    return F.leaky_relu(x, 0.10000000149011612)


class Conv(nn.Module):
    """Convolution from a TF HWIO filter and bias, with 'same' or 'valid' padding."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, stride: int = 1, padding: str = "same"):
        super().__init__()
        self.register_buffer("weight", weights[f"{prefix}/filters"].permute(3, 2, 0, 1).contiguous())
        self.register_buffer("bias", weights[f"{prefix}/bias"])
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = pad_same(x, self.weight.shape[-1], self.stride)
        return F.conv2d(x, self.weight, self.bias, self.stride)


class SeparableConv(nn.Module):
    """TF ``separableConv2d`` + bias: a depthwise 3x3 ('same' padding) then a pointwise 1x1."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, stride: int = 1, padding: str = "same"):
        super().__init__()
        self.register_buffer("depthwise", weights[f"{prefix}/depthwise_filter"].permute(2, 3, 0, 1).contiguous())
        self.register_buffer("pointwise", weights[f"{prefix}/pointwise_filter"].permute(3, 2, 0, 1).contiguous())
        self.register_buffer("bias", weights[f"{prefix}/bias"])
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = pad_same(x, self.depthwise.shape[-1], self.stride)
        x = F.conv2d(x, self.depthwise, stride=self.stride, groups=self.depthwise.shape[0])
        return F.conv2d(x, self.pointwise, self.bias)


def square_pad(images: torch.Tensor, centred: bool = True) -> tuple[torch.Tensor, int, int]:
    """Zero-pad NCHW images to a square, centred (the odd pixel after) or at bottom/right only.

    Returns the padded images and the left and top padding.
    """
    h, w = images.shape[-2:]
    side = max(h, w)
    left = (side - w) // 2 if centred else 0
    top = (side - h) // 2 if centred else 0
    if side == h == w:
        return images, 0, 0
    return F.pad(images, (left, side - w - left, top, side - h - top)), left, top


def to_input(images: torch.Tensor, size: int, mean: tuple[float, float, float] = MEAN_RGB) -> torch.Tensor:
    """face-api input: RGB 0-255 NCHW, square, resized to ``size``, minus the mean, over 255.

    Square images of another size are resized with antialiased bilinear interpolation.
    """
    if images.shape[-2] != images.shape[-1]:
        raise ValueError(f"expected square images, got {tuple(images.shape[-2:])}; use square_pad first")
    images = images.float()
    if images.shape[-1] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return (images - images.new_tensor(mean).view(1, 3, 1, 1)) / 255.0


def from_unit(images: torch.Tensor) -> torch.Tensor:
    """Map images in [-1, 1] (the generator's range) to RGB 0-255."""
    return (images.clamp(-1, 1) + 1) * 127.5


_SHARED: dict[tuple[type, str], nn.Module] = {}


def shared_net(cls: type[nn.Module], device: torch.device | str = "cpu") -> nn.Module:
    """One frozen, eval-mode instance of a face network class per device, loaded on first use."""
    key = (cls, str(torch.device(device)))
    if key not in _SHARED:
        _SHARED[key] = cls().to(device).eval().requires_grad_(False)
    return _SHARED[key]
