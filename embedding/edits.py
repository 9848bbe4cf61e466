"""Edits of embedded images that need no fitting: they combine the stored codes of embedded images.

Activation-tensor operations (Image2StyleGAN++ Sec. 5): render two codes, take both activation
tensors at one layer, combine them (spatial copy under a mask, averaging, channel-wise copy) and
render on from there; attribute-level feature transfer (Sec. 7.6) is the spatial copy at the
fourth layer. Code arithmetic (Image2StyleGAN): morphing, masked morphing, style mixing by W+
rows, expression transfer. Every function takes :class:`Code`s and returns images in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .generators import Generator
from .latents import read_latents

ActivationOp = Literal["copy", "average", "channels"]


@dataclass
class Code:
    """One embedded image: its W+ code ``[num_ws, w_dim]`` and noise maps (each ``[1, 1, H, W]``)."""

    w_plus: Tensor
    noise: list[Tensor]
    name: str = "code"

    def to(self, device: torch.device) -> Code:
        return Code(self.w_plus.to(device), [n.to(device) for n in self.noise], self.name)


def load_code(path: str | Path, generator: Generator) -> Code:
    """A latents file (``.pt`` with its noise; ``.npz`` gets the generator's constant noise)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such latents file")
    stored = read_latents(path, generator.num_ws, generator.w_dim)
    shapes = generator.synthesis.noise_shapes
    noise = stored.get("noise")
    if noise is None:
        noise = [n.detach().cpu() for n in generator.synthesis.const_noise()]
    elif len(noise) != len(shapes) or any(tuple(n.shape[-2:]) != s[-2:] for n, s in zip(noise, shapes, strict=False)):
        raise ValueError(f"{path}: its noise maps do not fit this generator ({len(noise)} maps, "
                         f"{len(shapes)} expected of sizes {[s[-1] for s in shapes]})")
    noise = [n.reshape(1, 1, *n.shape[-2:]).float() for n in noise]
    return Code(stored["w_plus"].float(), noise, path.stem)


def render_codes(generator: Generator, codes: Sequence[Code]) -> Tensor:
    """Render codes as one batch ``[N, 3, R, R]``."""
    device = generator.w_avg.device
    ws = torch.stack([c.w_plus for c in codes]).to(device)
    noise = [torch.cat(maps).to(device) for maps in zip(*[c.noise for c in codes], strict=True)]
    return generator.synthesis(ws, noise=noise)


def resolve_layer(generator: Generator, layer: str | int) -> str:
    """A layer name (``b16.conv0``), from a name or from the paper's 1-based layer number (4 → the 4th conv layer)."""
    names = generator.synthesis.layer_names
    if isinstance(layer, int) or str(layer).isdigit():
        number = int(layer)
        if not 1 <= number <= len(names):
            raise ValueError(f"layer {number} is outside 1..{len(names)}; layers are {names}")
        return names[number - 1]
    if layer not in names:
        raise ValueError(f"unknown layer {layer!r}; layers are {names}")
    return layer


def resize_mask(mask: Tensor, size: int) -> Tensor:
    """A ``[1, 1, H, W]`` mask brought to ``size``² by nearest sampling (the paper's downsampling)."""
    return mask if mask.shape[-1] == size else F.interpolate(mask, size=(size, size), mode="nearest")


@torch.no_grad()
def activation_edit(
    generator: Generator,
    a: Code,
    b: Code,
    layer: str | int,
    op: ActivationOp = "copy",
    mask: Tensor | None = None,
    lam: float = 0.5,
    channels: Sequence[int] = (),
    styles_from: Literal["a", "b"] = "a",
) -> Tensor:
    """Iatt: render with the layer's activation replaced by a combination of A (from ``a``) and B (from ``b``).

    ``copy``: the pixels under ``mask`` ([1, 1, R, R], 1 = take B) from B, the rest from A;
    ``average``: ``lam·A + (1 − lam)·B``; ``channels``: the listed channels from A, the others
    from B. The layers after it take the W+ rows of ``styles_from``; their noise is that code's,
    except for ``copy``, where each later noise map is copied under the mask too.
    """
    name = resolve_layer(generator, layer)
    synthesis = generator.synthesis
    device = generator.w_avg.device
    a, b = a.to(device), b.to(device)
    with synthesis.taps(read=[name]) as acts:   # one at a time: A is exactly what a's own render computes
        render_codes(generator, [a])
        act_a = acts[name]
        render_codes(generator, [b])
        act_b = acts[name]
    base = a if styles_from == "a" else b
    noise = base.noise
    if op == "copy":
        if mask is None:
            raise ValueError("a spatial copy needs a mask (1 where B's activations are copied)")
        mask = mask.to(device)
        m = resize_mask(mask, act_a.shape[-1])
        combined = (1 - m) * act_a + m * act_b
        noise = [(1 - resize_mask(mask, na.shape[-1])) * na + resize_mask(mask, na.shape[-1]) * nb
                 for na, nb in zip(a.noise, b.noise, strict=True)]
    elif op == "average":
        combined = lam * act_a + (1 - lam) * act_b
    elif op == "channels":
        bad = [c for c in channels if not 0 <= c < act_a.shape[1]]
        if not channels or bad:
            raise ValueError(f"channel-wise copy needs channels in 0..{act_a.shape[1] - 1} (layer {name}), "
                             f"got {list(channels)}")
        keep = torch.zeros(1, act_a.shape[1], 1, 1, device=device)
        keep[:, list(channels)] = 1
        combined = keep * act_a + (1 - keep) * act_b
    else:
        raise ValueError(f"unknown activation op {op!r}; ops are copy, average, channels")
    with synthesis.taps(replace={name: combined}):
        return render_codes(generator, [Code(base.w_plus, noise)])


def interpolate(a: Code, b: Code, t: float) -> Code:
    """The code a fraction ``t`` of the way from ``a`` to ``b``, W+ and noise maps alike (linearly).

    Fitted noise maps are far from unit variance (they hold the detail W+ cannot), so they are
    cross-faded as they are.
    """
    noise = [torch.lerp(na, nb, t) for na, nb in zip(a.noise, b.noise, strict=True)]
    return Code(torch.lerp(a.w_plus, b.w_plus, t), noise, f"{a.name}~{b.name}@{t:.3f}")


@torch.no_grad()
def morph(generator: Generator, a: Code, b: Code, frames: int = 8, mask: Tensor | None = None) -> Tensor:
    """``frames`` renders from ``a`` to ``b`` ([N, 3, R, R]); the first is ``a``'s render and the last ``b``'s.

    With ``mask`` ([1, 1, R, R], 1 = morph), only the masked region moves (masked morphing):
    every layer's activation outside the mask is kept from ``a``, so the region grows out of its
    surroundings, and the frame is composited over ``a``'s render with the mask, since the RGB
    path upsamples coarse layers across the mask's edge.
    """
    if frames < 2:
        raise ValueError(f"a morph needs at least 2 frames, got {frames}")
    device = generator.w_avg.device
    a, b = a.to(device), b.to(device)
    steps = [i / (frames - 1) for i in range(frames)]
    if mask is None:
        return torch.cat([render_codes(generator, [interpolate(a, b, t)]) for t in steps])
    synthesis = generator.synthesis
    names = synthesis.layer_names
    with synthesis.taps(read=names) as acts:
        base = render_codes(generator, [a])
    kept = {name: acts[name].clone() for name in names}
    mask = mask.to(device)

    def keep_outside(name: str):
        m = resize_mask(mask, kept[name].shape[-1])
        return lambda own: m * own + (1 - m) * kept[name]

    out = []
    with synthesis.taps(replace={name: keep_outside(name) for name in names}):
        for t in steps:
            out.append(mask * render_codes(generator, [interpolate(a, b, t)]) + (1 - mask) * base)
    return torch.cat(out)


def mix_rows(content: Code, style: Code, rows: int) -> Code:
    """Style transfer by W+ rows: the first ``rows`` rows (and their noise) from ``content``, the rest from ``style``.

    Conv layer ``j`` reads W+ row ``j``, so noise map ``j`` follows row ``j``.
    """
    num_ws = content.w_plus.shape[0]
    if not 0 <= rows <= num_ws:
        raise ValueError(f"rows must be in 0..{num_ws}, got {rows}")
    w = torch.cat([content.w_plus[:rows], style.w_plus[rows:]])
    noise = [nc if j < rows else ns for j, (nc, ns) in enumerate(zip(content.noise, style.noise, strict=True))]
    return Code(w, noise, f"{content.name}+{style.name}.rows{rows}")


def add_difference(base: Code, source: Code, target: Code, strength: float = 1.0) -> Code:
    """Expression transfer: ``base + strength·(target − source)``, source and target being one person's two codes."""
    w = base.w_plus + strength * (target.w_plus - source.w_plus)
    return Code(w, list(base.noise), f"{base.name}+({target.name}-{source.name})")
