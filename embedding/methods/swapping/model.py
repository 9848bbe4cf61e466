"""The Swapping Autoencoder's networks (Park et al. 2020), built from this project's StyleGAN2 layers.

An encoder E maps an image to a **structure code** (a spatial tensor at 1/8 of the image side)
and a **texture code** (a vector, pooled over the whole image). The generator G decodes a
structure code with modulated residual blocks whose styles are the texture code, so swapping the
texture of B onto the structure of A is ``G(zs_A, zt_B)``. Two critics train them: StyleGAN2's
image discriminator, and a patch co-occurrence discriminator that tells whether a patch has the
same texture statistics as a set of reference patches of the texture source.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embedding.generators.layers import Conv2dLayer, FullyConnectedLayer
from embedding.generators.stylegan2 import SynthesisLayer, ToRGBLayer


@dataclass(frozen=True)
class Architecture:
    """Sizes of the three networks.

    ``channels`` are E's (and, reversed, G's) widths from the image side down to the structure
    code's side, ``resolution / 2**(len(channels) - 1)``.
    """

    resolution: int = 64
    channels: tuple[int, ...] = (32, 64, 128, 128)
    structure_channels: int = 8
    texture_dim: int = 256
    patch_size: int = 16
    patch_channels: tuple[int, ...] = (32, 64, 128)

    def __post_init__(self) -> None:
        if self.resolution % 2 ** (len(self.channels) - 1):
            raise ValueError(f"resolution {self.resolution} is not divisible by 2^{len(self.channels) - 1}")

    @property
    def structure_size(self) -> int:
        """Side of the structure code."""
        return self.resolution // 2 ** (len(self.channels) - 1)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class ResidualDown(nn.Module):
    """Two 3×3 convolutions, the second ↓2, beside a 1×1 ↓2 skip (StyleGAN2's discriminator block)."""

    def __init__(self, in_channels: int, out_channels: int, down: int = 2) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=down)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=down)

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x, gain=math.sqrt(0.5)) + self.conv1(self.conv0(x), gain=math.sqrt(0.5))


class Encoder(nn.Module):
    """Image ``[B, 3, R, R]`` in [-1, 1] → structure code ``[B, s, R/8, R/8]`` and texture code ``[B, t]``."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        c = arch.channels
        self.fromrgb = Conv2dLayer(3, c[0], 1, activation="lrelu")
        self.down = nn.Sequential(*[ResidualDown(a, b) for a, b in zip(c[:-1], c[1:], strict=True)])
        self.structure = nn.Sequential(Conv2dLayer(c[-1], c[-1], 1, activation="lrelu"),
                                       Conv2dLayer(c[-1], arch.structure_channels, 1))
        self.texture = nn.Sequential(ResidualDown(c[-1], c[-1] * 2), Conv2dLayer(c[-1] * 2, arch.texture_dim, 1))

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        x = self.down(self.fromrgb(image))
        structure = F.normalize(self.structure(x), dim=1)   # unit length per position, as the paper's
        texture = F.normalize(self.texture(x).mean(dim=(2, 3)), dim=1)
        return structure, texture


class ModulatedResidual(nn.Module):
    """Two modulated 3×3 convolutions (the first optionally ↑2) styled by the texture code, beside a 1×1 skip."""

    def __init__(self, in_channels: int, out_channels: int, texture_dim: int, resolution: int, up: int = 1) -> None:
        super().__init__()
        self.conv0 = SynthesisLayer(in_channels, out_channels, texture_dim, resolution, up=up, use_noise=False)
        self.conv1 = SynthesisLayer(out_channels, out_channels, texture_dim, resolution, use_noise=False)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, up=up)

    def forward(self, x: Tensor, texture: Tensor) -> Tensor:
        y = self.conv1(self.conv0(x, texture, None), texture, None)
        return (self.skip(x) + y) * math.sqrt(0.5)


class SwapGenerator(nn.Module):
    """Structure code and texture code → image ``[B, 3, R, R]`` (not clamped)."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        c = arch.channels[::-1]
        t, size = arch.texture_dim, arch.structure_size
        self.fromstructure = Conv2dLayer(arch.structure_channels, c[0], 1, activation="lrelu")
        self.blocks = nn.ModuleList([ModulatedResidual(c[0], c[0], t, size), ModulatedResidual(c[0], c[0], t, size)])
        self.blocks.extend(ModulatedResidual(a, b, t, size * 2 ** (i + 1), up=2)
                           for i, (a, b) in enumerate(zip(c[:-1], c[1:], strict=True)))
        self.torgb = ToRGBLayer(c[-1], 3, t)

    def forward(self, structure: Tensor, texture: Tensor) -> Tensor:
        x = self.fromstructure(structure)
        for block in self.blocks:
            x = block(x, texture)
        return self.torgb(x, texture)


class PatchCooccurrence(nn.Module):
    """Scores a patch against reference patches: do they share their texture (co-occurrence statistics)?

    Every patch is encoded to a vector; the references' vectors are averaged, joined to the
    patch's, and a small MLP gives one logit per patch.
    """

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        c = arch.patch_channels
        self.fromrgb = Conv2dLayer(3, c[0], 1, activation="lrelu")
        self.down = nn.Sequential(*[ResidualDown(a, b) for a, b in zip(c[:-1], c[1:], strict=True)])
        side = arch.patch_size // 2 ** (len(c) - 1)
        self.embed = Conv2dLayer(c[-1], c[-1], side, activation="lrelu")   # a side×side kernel: one vector
        self.head = nn.Sequential(FullyConnectedLayer(2 * c[-1], c[-1], activation="lrelu"),
                                  FullyConnectedLayer(c[-1], 1))
        self.side = side

    def encode(self, patches: Tensor) -> Tensor:
        x = self.down(self.fromrgb(patches))
        return F.adaptive_avg_pool2d(self.embed(x), 1).flatten(1)

    def forward(self, patches: Tensor, references: Tensor) -> Tensor:
        """``patches`` ``[B·n, 3, p, p]``, ``references`` ``[B, k, 3, p, p]`` (n patches per image) → ``[B·n]``."""
        ref = self.encode(references.flatten(0, 1)).view(*references.shape[:2], -1).mean(1)
        feats = self.encode(patches)
        ref = ref.repeat_interleave(len(feats) // len(ref), dim=0)
        return self.head(torch.cat([feats, ref], dim=1)).squeeze(1)


def random_patches(images: Tensor, count: int, size: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` square crops per image, 1/8 to 1/4 of its side, resized to ``size``: ``[B, count, 3, size, size]``."""
    b, _, h, w = images.shape
    out = []
    for _ in range(count):
        crop = int(torch.randint(max(h // 8, 2), h // 4 + 1, (), generator=generator))
        top = torch.randint(0, h - crop + 1, (b,), generator=generator).tolist()
        left = torch.randint(0, w - crop + 1, (b,), generator=generator).tolist()
        patches = torch.stack([images[i, :, y : y + crop, x : x + crop] for i, (y, x) in enumerate(zip(top, left,
                                                                                                      strict=True))])
        out.append(F.interpolate(patches, size=(size, size), mode="bilinear", align_corners=False))
    return torch.stack(out, dim=1)


class SwappingAutoencoder(nn.Module):
    """Encoder and generator together: ``encode`` a photo, ``decode`` any pair of codes.

    The arguments are those of :class:`Architecture`.
    """

    def __init__(self, **arch: int | list[int] | tuple[int, ...]) -> None:
        super().__init__()
        self.arch = Architecture(**{k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()})
        self.encoder = Encoder(self.arch)
        self.generator = SwapGenerator(self.arch)

    @property
    def init_kwargs(self) -> dict:
        """The constructor's arguments (what the project's checkpoint format records)."""
        return self.arch.to_dict()

    @property
    def resolution(self) -> int:
        return self.arch.resolution

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder(images)

    def decode(self, structure: Tensor, texture: Tensor) -> Tensor:
        return self.generator(structure, texture)

    def forward(self, images: Tensor) -> Tensor:
        """The reconstruction ``G(E(x))``."""
        return self.decode(*self.encode(images))
