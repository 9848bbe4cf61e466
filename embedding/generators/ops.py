"""StyleGAN2's low-level operations in plain PyTorch: FIR resampling, bias+activation, modulated convolution.

Everything here runs on any device with standard ops (no compiled extensions), under autocast
(bf16/fp16) and with channels-last tensors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.2
ACTIVATION_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}


def setup_filter(taps: Sequence[float]) -> torch.Tensor:
    """The 2-D low-pass filter (outer product of 1-D taps) normalised to unit DC gain."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f) if f.ndim == 1 else f
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad (negative = crop), convolve with FIR ``f``, keep every ``down``-th pixel.

    ``padding`` is (x0, x1, y0, y1) in pixels of the upsampled image.
    """
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    weight = (f * gain).flip([0, 1]).to(x.dtype)
    weight = weight[None, None].expand(channels, 1, *f.shape)
    x = F.conv2d(x, weight, groups=channels)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Resample to ``up`` times the size with the FIR filter (used on the skip-connection images)."""
    taps = f.shape[-1]
    p0, p1 = (taps + up - 1) // 2, (taps - up) // 2
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    activation: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """Add a per-channel bias, apply the activation scaled by its gain, clamp to ±clamp."""
    if bias is not None:
        x = x + bias.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif activation == "relu":
        x = F.relu(x)
    gain = gain * ACTIVATION_GAIN[activation]
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def conv2d_resample(
    x: torch.Tensor,
    weight: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """Convolution (cross-correlation) with optional ×2 up- or downsampling through the FIR filter ``f``.

    Upsampling is a stride-2 transposed convolution followed by the filter; downsampling filters
    first, then runs a strided convolution. Padding is given relative to the upsampled image.
    """
    weight = weight.to(x.dtype)
    kh = weight.shape[-1]
    if up > 1:
        taps = f.shape[-1]
        p0 = padding + (taps + up - 1) // 2 - (kh - 1)
        p1 = padding + (taps - up) // 2 - (kh - up)
        x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=up)
        return upfirdn2d(x, f, padding=(p0, p1, p0, p1), gain=up * up)
    if down > 1:
        taps = f.shape[-1]
        p0 = padding + (taps - down + 1) // 2
        p1 = padding + (taps - down) // 2
        if kh == 1:
            x = upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))
            return F.conv2d(x, weight)
        x = upfirdn2d(x, f, padding=(p0, p1, p0, p1))
        return F.conv2d(x, weight, stride=down)
    return F.conv2d(x, weight, padding=padding)


def _low_precision(x: torch.Tensor) -> bool:
    """True when the convolution will run in fp16, where modulated activations can overflow."""
    if x.dtype == torch.float16:
        return True
    return x.is_cuda and torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.float16


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution, computed by modulating activations instead of weights.

    Scaling the input channels by the style, convolving with the shared weight and scaling the
    output channels by the demodulation coefficients equals convolving with per-image modulated
    and demodulated weights, but keeps one dense convolution for the whole batch.
    """
    batch = x.shape[0]
    if demodulate and _low_precision(x):
        fan_in = weight[0].numel()
        weight = weight / (math.sqrt(fan_in) * weight.abs().amax(dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.abs().amax(dim=1, keepdim=True)
    x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
    x = conv2d_resample(x, weight, f=resample_filter, up=up, padding=padding)
    if demodulate:
        # Σ_{i,k} (w_oik s_bi)² = (s²) · (Σ_k w_oik²)ᵀ
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()
        x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (the mapping network's input normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
