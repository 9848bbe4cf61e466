"""Degradations φ for Deep Generative Prior: grayscale, binary mask, Lanczos downsampling, and their composition.

Every degradation is a differentiable map of a batch ``[B, 3, H, W]`` in [-1, 1] (and the batch's mask,
``[B, 1, H, W]`` with 1 = a known pixel) to the degraded batch. DGP applies the same φ to the target
and to the render, so every loss is computed after φ.

A recipe names the chain as a list; each entry is a name, ``"name:argument"`` or a mapping::

    degradations: [grayscale]                          # colorization
    degradations: [mask]                               # inpainting (holes = 0 in the data's mask)
    degradations: [{kind: downsample, factor: 4}]      # ×4 super-resolution (also "downsample:4")
    degradations: [grayscale, mask]                    # mixed restoration, applied in order

This module also holds the sRGB ↔ CIE Lab (D65) conversions and the colorization composite (the
input's lightness with the output's colour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights (the "L" conversion of PIL and most colorization work).
LUMA_601 = (0.299, 0.587, 0.114)
LANCZOS_LOBES = 3


class Degradation:
    """A map φ of images ``[B, 3, H, W]`` in [-1, 1], given their masks ``[B, 1, H, W]`` (1 = known)."""

    name = "identity"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return images

    def output_size(self, size: int) -> int:
        """Side of the degraded image for a square input of side ``size``."""
        return size


@dataclass(frozen=True)
class Grayscale(Degradation):
    """Luma Y = 0.299 R + 0.587 G + 0.114 B (ITU-R 601), repeated in the three channels."""

    name = "grayscale"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return grayscale(images)


@dataclass(frozen=True)
class Mask(Degradation):
    """Multiply by the batch's binary mask (holes, 0 in the mask, become 0, mid-gray in [-1, 1])."""

    name = "mask"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            raise ValueError("the 'mask' degradation needs the batch's mask")
        if mask.shape[-2:] != images.shape[-2:]:
            mask = F.interpolate(mask, size=images.shape[-2:], mode="area")
        return images * mask.to(images.dtype)


@dataclass(frozen=True)
class Downsample(Degradation):
    """Lanczos-3 downsampling by an integer ``factor`` (antialiased like PIL's ``Image.LANCZOS``)."""

    factor: int = 4
    name = "downsample"

    def __post_init__(self) -> None:
        if int(self.factor) != self.factor or self.factor < 1:
            raise ValueError(f"downsample factor must be a positive integer, got {self.factor!r}")

    def __call__(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h, w = images.shape[-2:]
        if h % self.factor or w % self.factor:
            raise ValueError(f"cannot downsample {h}×{w} images by {self.factor}: sides must be multiples of it")
        return resize_lanczos(images, (h // self.factor, w // self.factor))

    def output_size(self, size: int) -> int:
        return size // self.factor


@dataclass(frozen=True)
class Compose(Degradation):
    """Apply ``parts`` in order (e.g. grayscale then mask: mixed restoration)."""

    parts: tuple[Degradation, ...] = ()
    name = "compose"

    def __call__(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for part in self.parts:
            images = part(images, mask)
        return images

    def output_size(self, size: int) -> int:
        for part in self.parts:
            size = part.output_size(size)
        return size

    def has(self, kind: type[Degradation]) -> bool:
        """Whether some part is a ``kind``."""
        return any(isinstance(p, kind) for p in self.parts)


_KINDS: dict[str, type[Degradation]] = {"grayscale": Grayscale, "mask": Mask, "downsample": Downsample}


def parse_degradations(spec: Sequence[str | dict[str, Any]] | str | None, source: str = "degradations") -> Compose:
    """The chain a recipe names (see the module docstring); ``source`` names the setting in errors."""
    if spec is None:
        return Compose(())
    if isinstance(spec, str | dict):
        spec = [spec]
    parts = []
    for entry in spec:
        if isinstance(entry, str):
            kind, _, arg = entry.partition(":")
            kwargs = {"factor": _int(arg, entry, source)} if arg else {}
        elif isinstance(entry, dict) and "kind" in entry:
            kind, kwargs = entry["kind"], {k: v for k, v in entry.items() if k != "kind"}
        else:
            raise ValueError(f"{source}: each entry is a name or a mapping with 'kind', got {entry!r}")
        if kind not in _KINDS:
            raise ValueError(f"{source}: unknown degradation {kind!r}; known: {sorted(_KINDS)}")
        try:
            parts.append(_KINDS[kind](**kwargs))
        except TypeError as e:
            raise ValueError(f"{source}: bad arguments {kwargs} for degradation {kind!r}: {e}") from e
    return Compose(tuple(parts))


def _int(text: str, entry: str, source: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{source}: {entry!r}: the argument after ':' must be an integer") from None


# ---- grayscale and Lanczos resampling ----------------------------------------------------------


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma of ``[B, 3, H, W]`` images, repeated to 3 channels (affine-invariant: any value range)."""
    weights = images.new_tensor(LUMA_601).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True).expand(-1, 3, -1, -1)


def lanczos(x: torch.Tensor, lobes: int = LANCZOS_LOBES) -> torch.Tensor:
    """The Lanczos window sinc(x)·sinc(x / lobes) on |x| < lobes, 0 outside."""
    inside = x.abs() < lobes
    return torch.where(inside, torch.sinc(x) * torch.sinc(x / lobes), torch.zeros_like(x))


@lru_cache(maxsize=64)
def lanczos_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """``[out, in]`` float64 resampling weights, as PIL computes them for ``Image.LANCZOS``.

    Output pixel ``i`` is centred at ``(i + 0.5)·scale`` in input pixels; when shrinking, the
    kernel is stretched by ``scale`` (antialiasing). Taps outside the image are dropped and the
    rest renormalised, so edges are handled as PIL does.
    """
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    support = LANCZOS_LOBES * stretch
    matrix = torch.zeros(out_size, in_size, dtype=torch.float64)
    for i in range(out_size):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), in_size)
        taps = torch.arange(lo, hi, dtype=torch.float64)
        weights = lanczos((taps - centre + 0.5) / stretch)
        matrix[i, lo:hi] = weights / weights.sum()
    return matrix


def resize_lanczos(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Separable Lanczos-3 resize of ``[..., H, W]`` to ``size`` (two matrix products, differentiable)."""
    rows = lanczos_matrix(images.shape[-2], size[0]).to(images)
    cols = lanczos_matrix(images.shape[-1], size[1]).to(images)
    return rows @ images @ cols.T


# ---- sRGB ↔ CIE Lab (D65) ----------------------------------------------------------------------

_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPSILON = (6 / 29) ** 3


def _linear(c: torch.Tensor) -> torch.Tensor:
    """sRGB decoding, odd-symmetric so that out-of-range values round-trip exactly."""
    a = c.abs()
    return torch.sign(c) * torch.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)


def _encoded(c: torch.Tensor) -> torch.Tensor:
    """sRGB encoding (inverse of ``_linear``)."""
    a = c.abs()
    return torch.sign(c) * torch.where(a <= 0.0031308, a * 12.92, 1.055 * a.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def _f(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > _EPSILON, t.clamp_min(_EPSILON) ** (1 / 3), t / (3 * (6 / 29) ** 2) + 4 / 29)


def _f_inv(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t > 6 / 29, t**3, 3 * (6 / 29) ** 2 * (t - 4 / 29))


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB ``[B, 3, H, W]`` in [0, 1] → CIE Lab (L in [0, 100]), D65 white."""
    m = rgb.new_tensor(_RGB_TO_XYZ)
    xyz = torch.einsum("ij,bjhw->bihw", m, _linear(rgb)) / rgb.new_tensor(_WHITE_D65).view(1, 3, 1, 1)
    fx, fy, fz = _f(xyz).unbind(1)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE Lab → sRGB in [0, 1] where in gamut (not clamped, so Lab → RGB → Lab round-trips)."""
    L, a, b = lab.unbind(1)
    fy = (L + 16) / 116
    xyz = torch.stack([_f_inv(fy + a / 500), _f_inv(fy), _f_inv(fy - b / 200)], dim=1)
    xyz = xyz * lab.new_tensor(_WHITE_D65).view(1, 3, 1, 1)
    m_inv = torch.linalg.inv(lab.new_tensor(_RGB_TO_XYZ, dtype=torch.float64)).to(lab.dtype)
    return _encoded(torch.einsum("ij,bjhw->bihw", m_inv, xyz))


def colorize(lightness_from: torch.Tensor, colour_from: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """The Lab composite of colorization, in [-1, 1]: L of ``lightness_from``, a·b of ``colour_from``.

    Where that colour is outside the sRGB gamut at this lightness, its chroma (a, b) is scaled down
    (per pixel, by bisection) until it fits, so the result is a valid image whose lightness is the
    input's exactly: the gray of the same L is always in gamut.
    """
    lab_in = rgb_to_lab(((lightness_from.float() + 1) / 2).clamp(0, 1))
    lab_out = rgb_to_lab(((colour_from.float() + 1) / 2).clamp(0, 1))
    L, ab = lab_in[:, :1], lab_out[:, 1:]

    def fits(scale: torch.Tensor) -> torch.Tensor:
        rgb = lab_to_rgb(torch.cat([L, ab * scale], 1))
        return ((rgb >= 0) & (rgb <= 1)).all(1, keepdim=True)

    lo, hi = torch.zeros_like(L), torch.ones_like(L)
    inside = fits(hi)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = fits(mid)
        lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
    scale = torch.where(inside, hi, lo)
    rgb = lab_to_rgb(torch.cat([L, ab * scale], 1)).clamp(0, 1)
    return (rgb * 2 - 1).to(colour_from.dtype)


def lightness(images: torch.Tensor) -> torch.Tensor:
    """Lab lightness ``[B, 1, H, W]`` of images in [-1, 1]."""
    return rgb_to_lab(((images.float() + 1) / 2).clamp(0, 1))[:, :1]


def same_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """``images`` Lanczos-resized to ``size``² when they are not that size already (e.g. for the discriminator)."""
    if images.shape[-2:] == (size, size):
        return images
    return resize_lanczos(images, (size, size))
