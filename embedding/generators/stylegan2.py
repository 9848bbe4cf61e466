"""StyleGAN2 generator (Karras et al. 2020, config-f and its smaller variants).

    z ──► mapping (8 FC, lr ×0.01) ──► w ──► broadcast to W+ [B, num_ws, w_dim]
    W+ ──► synthesis: const 4² → blocks b8 … b<res> (conv0 ↑2, conv1, toRGB), skip-summed RGB

Each synthesis layer takes one row of W+, modulates its convolution and adds a per-pixel noise
map scaled by a learned strength. Module and parameter names follow NVIDIA's checkpoints
(``mapping.fc0``, ``synthesis.b4.conv1.affine``, ``noise_const``, ...).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from embedding.generators.base import GeneratorBase, SynthesisBase
from embedding.generators.layers import DEFAULT_FILTER, FullyConnectedLayer
from embedding.generators.ops import bias_act, modulated_conv2d, normalize_2nd_moment, setup_filter, upsample2d


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature channels of the block at ``resolution``."""
    return min(channel_base // resolution, channel_max)


class MappingNetwork(nn.Module):
    """z (and optional class label c) → w, with the running mean ``w_avg`` used for truncation."""

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        embed_features: int | None = None,
        layer_features: int | None = None,
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = 0 if c_dim == 0 else (embed_features or w_dim)
        layer_features = layer_features or w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            layer = FullyConnectedLayer(features[i], features[i + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{i}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Map latents to W+ ``[B, num_ws, w_dim]`` (``[B, w_dim]`` when ``num_ws`` is None).

        In training mode the running mean ``w_avg`` is updated.
        """
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: pass c of shape [B, {self.c_dim}]")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1)
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.num_ws is None:
            return x
        if self.training and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x[:, :cutoff] = self.w_avg.lerp(x[:, :cutoff], truncation_psi)
        return x

    @torch.no_grad()
    def mean_latent(self, samples: int = 10_000, seed: int = 0, chunk: int = 10_000) -> torch.Tensor:
        """Mean of ``samples`` mapped random latents ``[w_dim]`` (for files that store no running mean)."""
        device = self.fc0.weight.device
        z = torch.randn(samples, self.z_dim, generator=torch.Generator().manual_seed(seed))
        return torch.cat([self.forward(part.to(device))[:, 0] for part in z.split(chunk)]).mean(0)


class SynthesisLayer(nn.Module):
    """Modulated 3×3 convolution (optionally ↑2) + scaled noise + bias + leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: int = 1,
        use_noise: bool = True,
        activation: str = "lrelu",
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """``noise`` is a unit-variance map [1 or B, 1, H, W]; the layer scales it by its strength."""
        styles = self.affine(w)
        scaled = None if noise is None or not self.use_noise else noise * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=scaled, up=self.up, padding=1,
                             resample_filter=self.resample_filter)
        return bias_act(x, self.bias, self.activation, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1×1 convolution to RGB, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution: (const | conv0 ↑2), conv1, toRGB added to the upsampled running image."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
        **layer_kwargs,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        self.register_buffer("resample_filter", setup_filter(resample_filter), persistent=False)
        common = dict(w_dim=w_dim, resolution=resolution, resample_filter=resample_filter,
                      conv_clamp=conv_clamp, **layer_kwargs)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=2, **common)
        self.conv1 = SynthesisLayer(out_channels, out_channels, **common)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2

    def conv_layers(self) -> list[SynthesisLayer]:
        return [self.conv1] if self.in_channels == 0 else [self.conv0, self.conv1]

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, noise: Sequence[torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``ws`` holds this block's rows (conv layers, then toRGB); ``noise`` one map per conv layer."""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        for i, layer in enumerate(self.conv_layers()):
            x = layer(x, ws[:, i], noise[i])
        y = self.torgb(x, ws[:, self.num_conv]).to(torch.float32)
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(SynthesisBase):
    """W+ (and noise maps) → image in [-1, 1]; the part of the generator that embedding optimises through."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        **block_kwargs,
    ) -> None:
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"resolution must be a power of two ≥ 4, got {img_resolution}")
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        for res in self.block_resolutions:
            in_ch = channels_at(res // 2, channel_base, channel_max) if res > 4 else 0
            out_ch = channels_at(res, channel_base, channel_max)
            block = SynthesisBlock(in_ch, out_ch, w_dim=w_dim, resolution=res, img_channels=img_channels,
                                   **block_kwargs)
            setattr(self, f"b{res}", block)
        self.num_ws = 2 * len(self.block_resolutions)

    def blocks(self) -> Iterator[SynthesisBlock]:
        return (getattr(self, f"b{res}") for res in self.block_resolutions)

    @property
    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """Shapes ``[1, 1, H, W]`` of the noise inputs, in layer order (4², then two per resolution)."""
        return [(1, 1, layer.resolution, layer.resolution) for b in self.blocks() for layer in b.conv_layers()]

    @property
    def layer_names(self) -> list[str]:
        """Names of the layers whose activations can be read or replaced (``b16.conv1``, ...)."""
        return [f"b{b.resolution}.{name}" for b in self.blocks()
                for name in (["conv1"] if b.in_channels == 0 else ["conv0", "conv1"])]

    def const_noise(self) -> list[torch.Tensor]:
        """The checkpoint's fixed noise maps (``noise_mode='const'``), each ``[1, 1, H, W]``."""
        return [layer.noise_const[None, None] for b in self.blocks() for layer in b.conv_layers()]

    @property
    def noise_rows(self) -> list[int]:
        """Conv layer ``j`` reads W+ row ``j``."""
        return list(range(len(self.noise_shapes)))

    def noise_strengths(self) -> torch.Tensor:
        return torch.stack([layer.noise_strength.detach().abs() for b in self.blocks() for layer in b.conv_layers()])

    def style_weights(self) -> list[torch.Tensor]:
        """The conv layers' affine weights (conv layer ``j`` reads row ``j``; the last toRGB's row is left out)."""
        return [layer.affine.weight for b in self.blocks() for layer in b.conv_layers()]

    def forward(
        self,
        ws: torch.Tensor,
        noise: Sequence[torch.Tensor] | None = None,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        """Render ``ws`` [B, num_ws, w_dim]; ``noise`` (one map per conv layer) overrides ``noise_mode``."""
        self.check_ws(ws)
        noise = self.resolve_noise(ws.shape[0], noise, noise_mode)
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = n_idx = 0
        for block in self.blocks():
            block_ws = ws.narrow(1, w_idx, block.num_conv + 1)
            x, img = block(x, img, block_ws, noise[n_idx : n_idx + block.num_conv])
            w_idx += block.num_conv
            n_idx += block.num_conv
        return img


class Generator(GeneratorBase):
    """StyleGAN2 generator: ``mapping`` (z, c → W+) and ``synthesis`` (W+, noise → image)."""

    def __init__(
        self,
        z_dim: int = 512,
        c_dim: int = 0,
        w_dim: int = 512,
        img_resolution: int = 1024,
        img_channels: int = 3,
        mapping_kwargs: dict | None = None,
        synthesis_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                synthesis_kwargs=dict(synthesis_kwargs or {}))
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))
