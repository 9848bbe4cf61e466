"""Masks: which pixels of a target image count (1) and which do not (0).

A mask comes from a file (matched by stem in a masks folder, or one file named in
the recipe) or from a shape given in the recipe (:class:`MaskSpec`). Files are read
by :mod:`embedding.images` with the same crop as their image and nearest-neighbour
sampling, so a binary mask stays binary; soft edges come only from ``blur_sigma``.

Processing order: binary mask -> ``invert`` -> ``dilate`` -> ``blur_sigma``. The
paper's ``Mblur`` is ``blur_sigma > 0``; ``Mblur+`` is ``dilate > 0`` plus blur.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

MaskKind = Literal["full", "box", "left", "right", "top", "bottom", "file"]

_HALVES: dict[str, tuple[float, float, float, float]] = {
    "full": (0.0, 0.0, 1.0, 1.0),
    "left": (0.0, 0.0, 0.5, 1.0),
    "right": (0.5, 0.0, 1.0, 1.0),
    "top": (0.0, 0.0, 1.0, 0.5),
    "bottom": (0.0, 0.5, 1.0, 1.0),
}


class MaskError(ValueError):
    """A mask that cannot be used for its image; the message names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"mask for {self.path}: {self.reason}"


@dataclass(frozen=True)
class MaskSpec:
    """A mask given in the recipe.

    ``kind``: ``full`` (every pixel), ``box`` (the rectangle ``box``), ``left``/``right``/
    ``top``/``bottom`` (that half), ``file`` (the image file ``path``, the same for every
    image; with ``path`` None, each image's file in ``masks_dir``).
    ``box``: ``(x0, y0, x1, y1)`` as fractions of the square, cropped image the generator
    sees; a pixel belongs to the box when its centre does.
    ``invert``: the mask given marks the pixels that do NOT count (holes); it applies to
    files in ``masks_dir`` too.
    """

    kind: MaskKind
    box: tuple[float, float, float, float] | None = None
    path: str | None = None
    invert: bool = False

    def __post_init__(self) -> None:
        if self.kind not in (*_HALVES, "box", "file"):
            raise ValueError(f"unknown mask kind {self.kind!r}")
        if self.kind == "box":
            if self.box is None or len(self.box) != 4:
                raise ValueError("a 'box' mask needs box: [x0, y0, x1, y1] (fractions of the image)")
            x0, y0, x1, y1 = self.box
            if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
                raise ValueError(f"mask box {self.box} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")


def region_mask(box: tuple[float, float, float, float], resolution: int) -> torch.Tensor:
    """Binary ``[1, R, R]`` mask of the pixels whose centres lie in ``box`` (fractions, x1/y1 excluded)."""
    centres = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution
    x0, y0, x1, y1 = box
    cols = (centres >= x0) & (centres < x1)
    rows = (centres >= y0) & (centres < y1)
    return (rows[:, None] & cols[None, :]).float()[None]


def shape_mask(spec: MaskSpec, resolution: int) -> torch.Tensor:
    """Binary ``[1, R, R]`` mask of a shape spec (every kind but ``file``), before ``invert``."""
    if spec.kind == "file":
        raise ValueError("a 'file' mask is read from its file, not drawn")
    return region_mask(spec.box if spec.kind == "box" else _HALVES[spec.kind], resolution)


def binarize(
    values: torch.Tensor, path: str | Path, mask_size: tuple[int, int], image_size: tuple[int, int]
) -> torch.Tensor:
    """Threshold a gray mask in [0, 1] at 0.5, after checking it has the size of its image."""
    if tuple(mask_size) != tuple(image_size):
        raise MaskError(
            path, f"mask is {mask_size[0]}x{mask_size[1]} but its image is {image_size[0]}x{image_size[1]}"
        )
    return (values > 0.5).float()


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grow the 1-region of a ``[..., R, R]`` mask by ``pixels`` in every direction (square max-pool)."""
    if pixels <= 0:
        return mask
    size = 2 * pixels + 1
    x = mask.reshape(-1, 1, *mask.shape[-2:])
    rows = F.max_pool2d(x, kernel_size=(1, size), stride=1, padding=(0, pixels))
    return F.max_pool2d(rows, kernel_size=(size, 1), stride=1, padding=(pixels, 0)).reshape(mask.shape)


def blur(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a ``[..., R, R]`` mask (separable, 3-sigma support, edges replicated)."""
    if sigma <= 0:
        return mask
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=mask.dtype, device=mask.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = F.pad(mask.reshape(-1, 1, *mask.shape[-2:]), (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1))
    x = F.conv2d(x, kernel.view(1, 1, -1, 1))
    return x.reshape(mask.shape).clamp(0.0, 1.0)


def finish(
    mask: torch.Tensor, path: str | Path, invert: bool = False, dilate_px: int = 0, blur_sigma: float = 0.0
) -> torch.Tensor:
    """Apply invert, dilation and blur, in that order; refuse a mask left with no pixel that counts."""
    if invert:
        mask = 1.0 - mask
    mask = blur(dilate(mask, dilate_px), blur_sigma)
    if not bool((mask > 0).any()):
        raise MaskError(path, "mask selects no pixel")
    return mask
