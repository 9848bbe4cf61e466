"""Differentiable augmentation for GAN training on small data (Zhao et al. 2020, "DiffAugment").

The same random colour, translation and cutout transforms are applied to real and generated
images before the discriminator sees them; being differentiable, they let the generator's
gradients through, so the discriminator cannot overfit the few thousand training images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def diff_augment(x: torch.Tensor, policy: Sequence[str] = POLICIES) -> torch.Tensor:
    """Apply each named transform with fresh random parameters per image (images in [-1, 1])."""
    policy = [policy] if isinstance(policy, str) else policy
    unknown = set(policy) - set(POLICIES)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; choose from {POLICIES}")
    for name in policy:
        x = {"color": _color, "translation": _translation, "cutout": _cutout}[name](x)
    return x


def _rand(x: torch.Tensor, *shape: int) -> torch.Tensor:
    return torch.rand(x.shape[0], *shape, device=x.device, dtype=x.dtype)


def _color(x: torch.Tensor) -> torch.Tensor:
    """Random brightness (±0.5), saturation (×0–2) and contrast (×0.5–1.5)."""
    x = x + (_rand(x, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(x, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, 1, 1, 1) + 0.5) + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros."""
    b, _, h, w = x.shape
    dy, dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    shift_y = torch.randint(-dy, dy + 1, (b, 1, 1), device=x.device)
    shift_x = torch.randint(-dx, dx + 1, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + shift_y
    cols = torch.arange(w, device=x.device).view(1, 1, w) + shift_x
    padded = F.pad(x, [1, 1, 1, 1])
    rows = (rows + 1).clamp(0, h + 1).expand(b, h, w)
    cols = (cols + 1).clamp(0, w + 1).expand(b, h, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1).expand(b, h, w)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a random square of ``ratio`` of the image size in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)
