"""MobileStyleGAN (Belousov 2021): a light synthesis network distilled from StyleGAN2, behind the same interface.

    W+ row 0 ──► const 4² → conv1 (3×3 modulated conv, noise, bias, leaky ReLU)
    per block (8² … 512²), rows 3i+1 … 3i+3:
        up    : modulate 4C channels, inverse Haar wavelet → C channels at twice the size
        conv1 : modulated depthwise 3×3 + pointwise 1×1, noise, bias, leaky ReLU
        conv2 : the same
    last row ──► to_img: modulated 1×1 → 12 channels (RGB low band + 3 high bands) → inverse Haar → RGB 1024²

Every modulation layer reads its own W+ row (23 at 1024²); a W broadcast to all rows renders
as the original network with one style. The demodulation is MobileStyleGAN's fixed one (a
per-output-channel gain that does not depend on the style), folded into the pointwise weights.
Noise maps are unit-variance; each layer scales its map by a strength (``noise.weight``).
Module and parameter names follow MobileStyleGAN's (``layers.6.conv1.conv.modulation.weight``).
The mapping network is StyleGAN2's (:class:`~.stylegan2.MappingNetwork`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from embedding.generators.base import GeneratorBase, SynthesisBase
from embedding.generators.stylegan2 import MappingNetwork
from embedding.generators.wavelets import inverse_haar

FFHQ_CHANNELS = (512, 512, 512, 512, 512, 256, 128, 64)
LRELU_SLOPE = 0.2


class ConstantInput(nn.Module):
    """The learned 4² input of the first layer."""

    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        nhwc = self.input.permute(0, 2, 3, 1).expand(batch, -1, -1, -1).contiguous()
        return nhwc.permute(0, 3, 1, 2)    # channels-last, which every later layer keeps (and vmap allows)


class NoiseInjection(nn.Module):
    """A layer's noise: its strength ``weight`` and ``noise``, the unit-variance map the network was exported with."""

    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.register_buffer("noise", torch.randn(1, 1, resolution, resolution))


class Modulation(nn.Linear):
    """The style → per-channel scale map (bias initialised to 1, so a zero style leaves channels unscaled)."""

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__(style_dim, channels)
        nn.init.ones_(self.bias)


def pointwise(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor,
              noise: torch.Tensor | None = None, negative_slope: float | None = None) -> torch.Tensor:
    """1×1 convolution with per-image input scales folded into the weights, then bias, noise and activation.

    ``x`` is channels-last ``[B, C, H, W]``, ``weight`` ``[O, C, 1, 1]``, ``scales`` ``[B, C]``, ``bias``
    ``[1, O, 1, 1]``, ``noise`` (already scaled) ``[1 or B, 1, H, W]``. The result is channels-last.
    """
    b, c, h, w = x.shape
    per_image = weight[None, :, :, 0, 0] * scales[:, None, :]                      # [B, O, C]
    pixels = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
    out = torch.baddbmm(bias.flatten()[None, None], pixels, per_image.transpose(1, 2))
    out = epilogue(out, None if noise is None else noise.reshape(-1, h * w, 1), negative_slope)
    return out.view(b, h, w, -1).permute(0, 3, 1, 2)


def epilogue(x: torch.Tensor, noise: torch.Tensor | None, negative_slope: float | None) -> torch.Tensor:
    """Add ``noise`` and apply the leaky ReLU in place: ``x`` is a convolution's own new output, not a view."""
    if noise is not None:
        x = x.add_(noise)
    return x if negative_slope is None else F.leaky_relu(x, negative_slope, inplace=True)


class ModulatedConv2d(nn.Module):
    """Modulated k×k convolution; ``weight`` carries the fixed demodulation gain when there is one."""

    def __init__(self, channels_in: int, channels_out: int, style_dim: int, kernel_size: int,
                 demodulate: bool = True) -> None:
        super().__init__()
        self.modulation = Modulation(style_dim, channels_in)
        self.scale = 1 / math.sqrt(channels_in * kernel_size**2)
        weight = torch.randn(channels_out, channels_in, kernel_size, kernel_size)
        self.weight = nn.Parameter(weight * demodulation(weight * self.scale) if demodulate else weight)

    def forward(self, x: torch.Tensor, style: torch.Tensor, bias: torch.Tensor, noise: torch.Tensor | None = None,
                negative_slope: float | None = None) -> torch.Tensor:
        """The convolution plus ``bias`` and (scaled) ``noise``, then the leaky ReLU if a slope is given."""
        scales = self.modulation(style) * self.scale
        if self.weight.shape[-1] == 1:
            return pointwise(x, self.weight, scales, bias, noise, negative_slope)
        x = F.conv2d(x * scales[:, :, None, None], self.weight, bias.flatten(), padding=self.weight.shape[-1] // 2)
        return epilogue(x, noise, negative_slope)


class ModulatedDWConv2d(nn.Module):
    """Modulated depthwise-separable convolution: depthwise k×k, then pointwise 1×1 (demodulation folded in).

    A per-channel modulation commutes with a depthwise convolution, so it scales the pointwise
    weights instead of the input.
    """

    def __init__(self, channels_in: int, channels_out: int, style_dim: int, kernel_size: int) -> None:
        super().__init__()
        self.modulation = Modulation(style_dim, channels_in)
        self.scale = 1 / math.sqrt(channels_in * kernel_size**2)
        self.weight_dw = nn.Parameter(torch.randn(channels_in, 1, kernel_size, kernel_size))
        permute = torch.randn(channels_out, channels_in, 1, 1)
        combined = permute * self.weight_dw[:, 0].unsqueeze(0) * self.scale               # [O, C, k, k]
        self.weight_permute = nn.Parameter(permute * demodulation(combined))

    def forward(self, x: torch.Tensor, style: torch.Tensor, bias: torch.Tensor, noise: torch.Tensor | None = None,
                negative_slope: float | None = None) -> torch.Tensor:
        """The convolution plus ``bias`` and (scaled) ``noise``, then the leaky ReLU if a slope is given."""
        x = F.conv2d(x, self.weight_dw, padding=self.weight_dw.shape[-1] // 2, groups=x.shape[1])
        return pointwise(x, self.weight_permute, self.modulation(style) * self.scale, bias, noise, negative_slope)


def demodulation(weight: torch.Tensor) -> torch.Tensor:
    """The gain ``[O, 1, 1, 1]`` that gives each output channel of ``weight`` unit norm (a unit style's demodulation).

    Random networks start with it folded into their weights, as the exported network has its own.
    """
    return (weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).rsqrt()


class StyledConv2d(nn.Module):
    """Modulated convolution + scaled noise + bias + leaky ReLU (0.2)."""

    def __init__(self, channels_in: int, channels_out: int, style_dim: int, resolution: int,
                 depthwise: bool = True) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv = (ModulatedDWConv2d(channels_in, channels_out, style_dim, 3) if depthwise
                     else ModulatedConv2d(channels_in, channels_out, style_dim, 3))
        self.noise = NoiseInjection(resolution)
        self.bias = nn.Parameter(torch.zeros(1, channels_out, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """``noise`` is a unit-variance map ``[1 or B, 1, H, W]`` (None: none); the layer scales it by its strength."""
        scaled = None if noise is None else self.noise.weight * noise
        return self.conv(x, style, self.bias, scaled, LRELU_SLOPE)


class IDWTUpsample(nn.Module):
    """Modulate the 4C input channels, then read them as Haar bands: C channels at twice the size."""

    def __init__(self, channels_in: int, style_dim: int) -> None:
        super().__init__()
        if channels_in % 4:
            raise ValueError(f"the wavelet upsampling needs channels divisible by 4, got {channels_in}")
        self.modulation = Modulation(style_dim, channels_in)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return inverse_haar(x * self.modulation(style)[:, :, None, None])


class MultichannelImage(nn.Module):
    """The image head: modulated 1×1 convolution (no demodulation) + bias → RGB Haar bands (12 channels)."""

    def __init__(self, channels_in: int, style_dim: int, channels_out: int = 12) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(channels_in, channels_out, style_dim, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, channels_out, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.conv(x, style, self.bias)


class MobileSynthesisBlock(nn.Module):
    """Wavelet upsampling, two styled depthwise-separable convolutions; the last block also has the image head."""

    def __init__(self, channels_in: int, channels_out: int, style_dim: int, resolution: int,
                 image_head: bool = False) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = IDWTUpsample(channels_in, style_dim)
        self.conv1 = StyledConv2d(channels_in // 4, channels_out, style_dim, resolution)
        self.conv2 = StyledConv2d(channels_out, channels_out, style_dim, resolution)
        if image_head:
            self.to_img = MultichannelImage(channels_out, style_dim)

    def forward(self, x: torch.Tensor, ws: torch.Tensor, noise: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """``ws`` holds this block's rows (up, conv1, conv2); ``noise`` one map per conv."""
        x = self.up(x, ws[:, 0])
        x = self.conv1(x, ws[:, 1], noise[0])
        return self.conv2(x, ws[:, 2], noise[1])


class MobileSynthesisNetwork(SynthesisBase):
    """W+ ``[B, 2 + 3·blocks, w_dim]`` (and noise maps) → RGB at ``8·2^blocks``², about [-1, 1], not clipped."""

    def __init__(self, style_dim: int = 512, channels: Sequence[int] = FFHQ_CHANNELS) -> None:
        super().__init__()
        self.w_dim, self.channels = style_dim, list(channels)
        self.input = ConstantInput(channels[0])
        self.conv1 = StyledConv2d(channels[0], channels[0], style_dim, 4, depthwise=False)
        self.layers = nn.ModuleList(
            MobileSynthesisBlock(c_in, c_out, style_dim, 8 * 2**i, image_head=i == len(channels) - 2)
            for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)))
        self.num_ws = 2 + 3 * len(self.layers)
        self.img_resolution = 2 * self.layers[-1].resolution

    def styled_convs(self) -> list[tuple[str, StyledConv2d]]:
        """The noisy layers by name, in rendering order."""
        return [("conv1", self.conv1), *[(f"layers.{i}.{name}", getattr(block, name))
                                         for i, block in enumerate(self.layers) for name in ("conv1", "conv2")]]

    @property
    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """``[1, 1, H, W]`` per styled conv: 4², then two per resolution."""
        return [(1, 1, conv.resolution, conv.resolution) for _, conv in self.styled_convs()]

    @property
    def noise_rows(self) -> list[int]:
        """conv1 reads row 0; block i's conv1 and conv2 read rows 3i + 2 and 3i + 3."""
        return [0, *[3 * i + j for i in range(len(self.layers)) for j in (2, 3)]]

    @property
    def layer_names(self) -> list[str]:
        """The styled convolutions (``conv1``, ``layers.0.conv1``, ...), as StyleGAN2's conv layers."""
        return [name for name, _ in self.styled_convs()]

    def const_noise(self) -> list[torch.Tensor]:
        return [conv.noise.noise for _, conv in self.styled_convs()]

    def noise_strengths(self) -> torch.Tensor:
        return torch.cat([conv.noise.weight.detach().abs() for _, conv in self.styled_convs()])

    def style_weights(self) -> list[torch.Tensor]:
        """Every modulation in row order: conv1, then each block's up, conv1, conv2, and the image head."""
        blocks = [m for b in self.layers for m in (b.up.modulation, b.conv1.conv.modulation, b.conv2.conv.modulation)]
        return [m.weight for m in [self.conv1.conv.modulation, *blocks, self.layers[-1].to_img.conv.modulation]]

    def forward(self, ws: torch.Tensor, noise: Sequence[torch.Tensor] | None = None,
                noise_mode: str = "const") -> torch.Tensor:
        """Render ``ws``; ``noise`` (one unit-variance map per styled conv) overrides ``noise_mode``."""
        self.check_ws(ws)
        noise = self.resolve_noise(ws.shape[0], noise, noise_mode)
        ws = ws.to(torch.float32)
        x = self.conv1(self.input(ws.shape[0]), ws[:, 0], noise[0])
        for i, block in enumerate(self.layers):
            x = block(x, ws[:, 3 * i + 1 : 3 * i + 4], noise[2 * i + 1 : 2 * i + 3])
        return inverse_haar(self.layers[-1].to_img(x, ws[:, -1]))


class MobileStyleGAN(GeneratorBase):
    """StyleGAN2's mapping network and MobileStyleGAN's synthesis network."""

    architecture = "mobilestylegan"   # recorded in the project's checkpoint format
    # The folded demodulation bounds nothing: in 8 random directions from the mean code, renders stay within
    # ±2.7 at distance 15 but reach ±8 at 20 and ±645 at 30 (mapped codes lie 8-14 from the mean).
    code_radius = 15.0

    def __init__(self, z_dim: int = 512, w_dim: int = 512, channels: Sequence[int] = FFHQ_CHANNELS,
                 mapping_layers: int = 8) -> None:
        super().__init__()
        self.init_kwargs = dict(z_dim=z_dim, w_dim=w_dim, channels=list(channels), mapping_layers=mapping_layers)
        self.z_dim, self.c_dim, self.w_dim = z_dim, 0, w_dim
        self.synthesis = MobileSynthesisNetwork(w_dim, channels)
        self.num_ws = self.synthesis.num_ws
        self.img_resolution, self.img_channels = self.synthesis.img_resolution, 3
        self.mapping = MappingNetwork(z_dim, 0, w_dim, self.num_ws, num_layers=mapping_layers)
