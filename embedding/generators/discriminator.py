"""StyleGAN2 residual discriminator, returning per-block features as well as the score.

    image ──► b<res>: fromRGB, conv0, conv1 ↓2 (+ 1×1 skip ↓2) ──► … ──► b8 ──► b4: mbstd, conv, fc, out

The per-block features are what Deep Generative Prior compares; names follow NVIDIA's checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from embedding.generators.layers import DEFAULT_FILTER, Conv2dLayer, FullyConnectedLayer
from embedding.generators.stylegan2 import MappingNetwork, channels_at


class DiscriminatorBlock(nn.Module):
    """Two 3×3 convolutions, the second ↓2, with a residual 1×1 ↓2 skip; the first block reads RGB."""

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        resample_filter: Sequence[float] = DEFAULT_FILTER,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2, resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img.to(torch.float32))
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class MinibatchStdLayer(nn.Module):
    """Append the standard deviation across groups of images as extra feature channels."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"batch size {n} must be a multiple of the minibatch-std group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4² head: minibatch std, 3×3 conv, FC, output (projected onto the label when conditional)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int = 4,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)
        return x


class Discriminator(nn.Module):
    """Image (and optional label) → realism score; ``features`` also returns every block's output."""

    def __init__(
        self,
        c_dim: int = 0,
        img_resolution: int = 1024,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        conv_clamp: float | None = None,
        cmap_dim: int | None = None,
        block_kwargs: dict | None = None,
        mapping_kwargs: dict | None = None,
        epilogue_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        self.init_kwargs = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                                channel_base=channel_base, channel_max=channel_max, conv_clamp=conv_clamp,
                                cmap_dim=cmap_dim, block_kwargs=dict(block_kwargs or {}),
                                mapping_kwargs=dict(mapping_kwargs or {}),
                                epilogue_kwargs=dict(epilogue_kwargs or {}))
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(int(math.log2(img_resolution)), 2, -1)]
        ch = {res: channels_at(res, channel_base, channel_max) for res in [*self.block_resolutions, 4]}
        cmap_dim = 0 if c_dim == 0 else (cmap_dim or ch[4])
        for res in self.block_resolutions:
            in_ch = ch[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_ch, ch[res], ch[res // 2], res, img_channels, conv_clamp=conv_clamp,
                                       **(block_kwargs or {}))
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=None, w_avg_beta=None, **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim, conv_clamp=conv_clamp, **(epilogue_kwargs or {}))

    @property
    def feature_names(self) -> list[str]:
        """Names of the per-block features, from the input resolution down (``b256``, ``b128``, ...)."""
        return [f"b{res}" for res in self.block_resolutions]

    def features(
        self, img: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Score ``[B, 1]`` and the output of each block (keyed by ``feature_names``)."""
        feats: dict[str, torch.Tensor] = {}
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
            feats[f"b{res}"] = x
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap), feats

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.features(img, c)[0]
