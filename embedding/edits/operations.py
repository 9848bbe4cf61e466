"""Edits of embedded images that need no fitting: they combine the stored codes of embedded images.

Activation-tensor operations (Image2StyleGAN++ Sec. 5): render two codes, take both activation
tensors at one layer, combine them (spatial copy under a mask, averaging, channel-wise copy) and
render on from there; attribute-level feature transfer (Sec. 7.6) is the spatial copy at the
fourth layer. Code arithmetic (Image2StyleGAN): morphing, masked morphing, style mixing by W+
rows, expression transfer, and random jittering (DGP's: Gaussian noise on the fitted code).
Every function takes :class:`Code`s and returns images in [-1, 1] or new codes.

Codes of Deep Generative Prior fits each come with their own fine-tuned generator. The two-code
edits then render each code's part with its own generator: an activation edit takes A's and B's
activations from their own generators and renders the later layers with the generator of the
code whose styles they use; a morph moves the weights from A's to B's along with the code.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from embedding.generators import Generator
from embedding.latents import Latents

ActivationOp = Literal["copy", "average", "channels"]


@dataclass
class Code:
    """One embedded image: its W+ code ``[num_ws, w_dim]`` and noise maps (each ``[1, 1, H, W]``)."""

    w_plus: Tensor
    noise: list[Tensor]
    name: str = "code"

    def to(self, device: torch.device) -> Code:
        return Code(self.w_plus.to(device), [n.to(device) for n in self.noise], self.name)


def code_from(record: Latents, generator: Generator) -> Code:
    """A latents record's code, checked against ``generator`` (``.npz`` files get its constant noise)."""
    noise = record.check(generator).noise
    if noise is None:
        noise = [n.detach().cpu() for n in generator.synthesis.const_noise()]
    return Code(record.w_plus, noise, record.name)


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
    generator_b: Generator | None = None,
) -> Tensor:
    """Iatt: render with the layer's activation replaced by a combination of A (from ``a``) and B (from ``b``).

    ``copy``: the pixels under ``mask`` ([1, 1, R, R], 1 = take B) from B, the rest from A;
    ``average``: ``lam·A + (1 − lam)·B``; ``channels``: the listed channels from A, the others
    from B. The layers after it take the W+ rows of ``styles_from``; their noise is that code's,
    except for ``copy``, where each later noise map is copied under the mask too. ``generator_b``
    renders B when it has weights of its own (a DGP fit; default ``generator``), and the later
    layers run with the generator of ``styles_from``.
    """
    name = resolve_layer(generator, layer)
    generator_b = generator if generator_b is None else generator_b
    device = generator.w_avg.device
    a, b = a.to(device), b.to(device)
    act_a, act_b = _activation(generator, a, name), _activation(generator_b, b, name)
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
    rest = generator if styles_from == "a" else generator_b
    with rest.synthesis.taps(replace={name: combined}):
        return render_codes(rest, [Code(base.w_plus, noise)])


def _activation(generator: Generator, code: Code, name: str) -> Tensor:
    """The output of layer ``name`` when ``generator`` renders ``code`` alone."""
    with generator.synthesis.taps(read=[name]) as acts:
        render_codes(generator, [code])
    return acts[name]


def interpolate(a: Code, b: Code, t: float) -> Code:
    """The code a fraction ``t`` of the way from ``a`` to ``b``, W+ and noise maps alike (linearly).

    Fitted noise maps are far from unit variance (they hold the detail W+ cannot), so they are
    cross-faded as they are.
    """
    noise = [torch.lerp(na, nb, t) for na, nb in zip(a.noise, b.noise, strict=True)]
    return Code(torch.lerp(a.w_plus, b.w_plus, t), noise, f"{a.name}~{b.name}@{t:.3f}")


@torch.no_grad()
def morph(generator: Generator, a: Code, b: Code, frames: int = 8, mask: Tensor | None = None,
          generator_b: Generator | None = None) -> Tensor:
    """``frames`` renders from ``a`` to ``b`` ([N, 3, R, R]); the first is ``a``'s render and the last ``b``'s.

    With ``mask`` ([1, 1, R, R], 1 = morph), only the masked region moves (masked morphing):
    every layer's activation outside the mask is kept from ``a``, so the region grows out of its
    surroundings, and the frame is composited over ``a``'s render with the mask, since the RGB
    path upsamples coarse layers across the mask's edge. With ``generator_b`` (B's own weights,
    a DGP fit), frame ``t`` renders with the synthesis weights ``lerp(θ_A, θ_B, t)``.
    """
    if frames < 2:
        raise ValueError(f"a morph needs at least 2 frames, got {frames}")
    device = generator.w_avg.device
    a, b = a.to(device), b.to(device)
    steps = [i / (frames - 1) for i in range(frames)]
    if mask is None:
        return torch.cat([render_codes(g, [interpolate(a, b, t)]) for t, g in _weights_between(generator, generator_b,
                                                                                              steps)])
    names = generator.synthesis.layer_names
    with generator.synthesis.taps(read=names) as acts:
        base = render_codes(generator, [a])
    kept = {name: acts[name].clone() for name in names}
    mask = mask.to(device)

    def keep_outside(name: str):
        m = resize_mask(mask, kept[name].shape[-1])
        return lambda own: m * own + (1 - m) * kept[name]

    out = []
    for t, g in _weights_between(generator, generator_b, steps):
        with g.synthesis.taps(replace={name: keep_outside(name) for name in names}):
            out.append(mask * render_codes(g, [interpolate(a, b, t)]) + (1 - mask) * base)
    return torch.cat(out)


def _weights_between(a: Generator, b: Generator | None, steps: Sequence[float]) -> Iterator[tuple[float, Generator]]:
    """``(t, generator)`` per ``t``: ``a`` itself without ``b``, else a copy with synthesis weights lerp(θ_a, θ_b, t).

    ``torch.lerp`` gives θ_a exactly at t = 0 and θ_b exactly at t = 1, so the end frames are the two fits.
    """
    if b is None or b is a:
        yield from ((t, a) for t in steps)
        return
    work = copy.deepcopy(a)
    params = list(zip(work.synthesis.parameters(), a.synthesis.parameters(), b.synthesis.parameters(), strict=True))
    for t in steps:
        for p, pa, pb in params:
            p.copy_(torch.lerp(pa, pb, t))
        yield t, work


def mix_rows(content: Code, style: Code, rows: int, noise_rows: Sequence[int] | None = None) -> Code:
    """Style transfer by W+ rows: the first ``rows`` rows (and their noise) from ``content``, the rest from ``style``.

    Noise map ``j`` follows the W+ row its layer reads, ``noise_rows[j]`` (the synthesis network's
    ``noise_rows``; default ``j``, as in StyleGAN2, where conv layer ``j`` reads row ``j``).
    """
    num_ws = content.w_plus.shape[0]
    if not 0 <= rows <= num_ws:
        raise ValueError(f"rows must be in 0..{num_ws}, got {rows}")
    w = torch.cat([content.w_plus[:rows], style.w_plus[rows:]])
    noise_rows = range(len(content.noise)) if noise_rows is None else noise_rows
    noise = [nc if r < rows else ns for r, nc, ns in zip(noise_rows, content.noise, style.noise, strict=True)]
    return Code(w, noise, f"{content.name}+{style.name}.rows{rows}")


def add_difference(base: Code, source: Code, target: Code, strength: float = 1.0) -> Code:
    """Expression transfer: ``base + strength·(target − source)``, source and target being one person's two codes."""
    w = base.w_plus + strength * (target.w_plus - source.w_plus)
    return Code(w, list(base.noise), f"{base.name}+({target.name}-{source.name})")


@torch.no_grad()
def w_spread(generator: Generator, samples: int = 2000, seed: int = 0) -> Tensor:
    """Per-channel standard deviation of W ``[w_dim]``, from mapped random z: the unit of jitter."""
    device = generator.w_avg.device
    z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return generator.mapping(z, None)[:, 0].std(0)


def jitter(generator: Generator, code: Code, count: int = 8, sigma: float = 0.3, seed: int = 0,
           shared_rows: bool = False) -> list[Code]:
    """``count`` variants of ``code``: Gaussian noise of σ (in units of W's spread) added to its W+.

    With ``shared_rows`` every row gets the same noise (a code fitted in W stays in W). The noise
    maps are kept, so σ = 0 gives the code itself.
    """
    if count < 1 or sigma < 0:
        raise ValueError(f"jitter needs count ≥ 1 and sigma ≥ 0, got {count} and {sigma}")
    num_ws, w_dim = code.w_plus.shape
    eps = torch.randn(count, 1 if shared_rows else num_ws, w_dim, generator=torch.Generator().manual_seed(seed))
    offsets = sigma * w_spread(generator).cpu() * eps
    return [Code(code.w_plus + offsets[i], list(code.noise), f"{code.name}.jitter{i:02d}") for i in range(count)]
