"""The inverse 2-D Haar wavelet transform that MobileStyleGAN upsamples with, as an in-place interleave.

Four bands at H×W become one map at 2H×2W: each output pixel is a signed half-sum of the four
band values at its parent position. Channels-last tensors are read and written without copies.
"""

from __future__ import annotations

import torch


def inverse_haar(x: torch.Tensor) -> torch.Tensor:
    """Inverse 2-D Haar transform: ``[B, 4C, H, W]`` (low band, then C×3 high bands LH, HL, HH) → ``[B, C, 2H, 2W]``.

    Output pixel (2i + a, 2j + b) is ½ (LL + (−1)ᵃ LH + (−1)ᵇ HL + (−1)ᵃ⁺ᵇ HH) at (i, j), written
    straight into its interleaved place (channels-last). The transform is orthonormal, so its
    gradient is the forward transform of the incoming gradient.
    """
    return _InverseHaar.apply(x)


def _bands(nhwc: torch.Tensor, channels: int) -> list[torch.Tensor]:
    """LL, LH, HL, HH views ``[B, H, W, C]`` of a ``[B, H, W, 4C]`` tensor laid out as [LL | C × (LH, HL, HH)]."""
    high = nhwc[..., channels:].unflatten(-1, (channels, 3))
    return [nhwc[..., :channels], high[..., 0], high[..., 1], high[..., 2]]


def _butterfly(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor, out: list[torch.Tensor]) -> None:
    """``out = H·(a, b, c, d)`` for the symmetric 4×4 Haar sign matrix ``H`` (its own inverse up to a factor 4)."""
    s, t, u, v = a + d, b + c, a - d, b - c
    torch.add(s, t, out=out[0])
    torch.add(u, v, out=out[1])
    torch.sub(u, v, out=out[2])
    torch.sub(s, t, out=out[3])


def _haar_synthesis(x: torch.Tensor) -> torch.Tensor:
    b, c4, h, w = x.shape
    y = x.new_empty(b, h, 2, w, 2, c4 // 4)
    _butterfly(*_bands(x.permute(0, 2, 3, 1), c4 // 4), out=[y[:, :, i, :, j] for i in (0, 1) for j in (0, 1)])
    return y.mul_(0.5).view(b, 2 * h, 2 * w, c4 // 4).permute(0, 3, 1, 2)


def _haar_analysis(y: torch.Tensor) -> torch.Tensor:
    b, c, h2, w2 = y.shape
    grid = y.permute(0, 2, 3, 1).reshape(b, h2 // 2, 2, w2 // 2, 2, c)
    x = y.new_empty(b, h2 // 2, w2 // 2, 4 * c)
    _butterfly(*[grid[:, :, i, :, j] for i in (0, 1) for j in (0, 1)], out=_bands(x, c))
    return x.mul_(0.5).permute(0, 3, 1, 2)


class _InverseHaar(torch.autograd.Function):
    """The inverse Haar transform with the forward transform as its backward (and batched under ``vmap``)."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _haar_synthesis(x)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: torch.Tensor) -> None:
        pass

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _haar_analysis(grad)

    @staticmethod
    def vmap(info, in_dims: tuple, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        x = x.movedim(in_dims[0], 0)
        return _InverseHaar.apply(x.flatten(0, 1)).unflatten(0, x.shape[:2]), 0
