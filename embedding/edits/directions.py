"""Attribute directions in W: vectors that change one attribute of an embedded image when added to its code.

Three ways to find one:

- **mean difference** of two labelled groups of codes (the attribute vector of the GAN-editing
  lecture): mean code of the images with the attribute minus that of those without;
- **linear boundary** on generator samples labelled by a scorer (InterFaceGAN's idea): the unit
  normal of the least-squares linear classifier between the highest and the lowest scored
  fractions of random codes in W;
- **closed-form factorization** (SeFa): the eigenvectors of ``AᵀA``, ``A`` the style (affine)
  weights of the chosen layers with each output channel's weights at unit length; unsupervised.

A :class:`Direction` is stored as a file; ``embed edit attribute`` applies one to latents files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from embedding.files import atomic_write
from embedding.generators import Generator
from embedding.progress import Progress

BATCH_PIXELS = 8 * 1024**2  # pixels rendered at a time when sampling codes: 100 at 256² and below, 8 at 1024²


@dataclass(eq=False)
class Direction:
    """A direction ``[w_dim]`` (the same on every row) or ``[num_ws, w_dim]``, and the W+ rows it moves.

    ``rows`` None moves every row; ``metadata`` says how it was found.
    """

    vector: Tensor
    rows: list[int] | None = None
    metadata: dict = field(default_factory=dict)

    def apply(self, w_plus: Tensor, strength: float) -> Tensor:
        """``w_plus`` ``[num_ws, w_dim]`` moved by ``strength`` times the direction on its rows."""
        step = torch.zeros_like(w_plus) + self.vector.to(w_plus)
        if self.rows is not None:
            keep = torch.ones(w_plus.shape[0], dtype=torch.bool)
            keep[self.rows] = False
            step[keep] = 0
        return w_plus + strength * step

    def save(self, path: str | Path) -> None:
        record = {"direction": self.vector.detach().float().cpu(), "rows": self.rows, "metadata": self.metadata}
        atomic_write(Path(path), lambda f: torch.save(record, f))

    @classmethod
    def load(cls, path: str | Path) -> Direction:
        """Read a direction file; errors name it."""
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            vector, rows, metadata = stored["direction"].float(), stored.get("rows"), dict(stored.get("metadata") or {})
        except Exception as e:  # a missing, corrupt or foreign file
            raise ValueError(f"{path}: not a direction file: {e}") from e
        if vector.ndim not in (1, 2):
            raise ValueError(f"{path}: a direction is [w_dim] or [num_ws, w_dim], got {list(vector.shape)}")
        return cls(vector, rows, metadata)

    def check(self, generator: Generator, name: str = "direction") -> Direction:
        """``self``, after checking that it fits ``generator``."""
        want = (generator.w_dim,) if self.vector.ndim == 1 else (generator.num_ws, generator.w_dim)
        bad_rows = [r for r in self.rows or [] if not 0 <= r < generator.num_ws]
        if tuple(self.vector.shape) != want or bad_rows:
            raise ValueError(f"{name}: a direction of {list(self.vector.shape)} (rows {self.rows}) does not fit "
                             f"this generator ({generator.num_ws} rows of {generator.w_dim})")
        return self


def mean_difference(without: Sequence[Tensor], with_: Sequence[Tensor]) -> Tensor:
    """Mean of the codes ``with_`` the attribute minus the mean of those ``without`` it (same shapes)."""
    if not without or not with_:
        raise ValueError("a mean difference needs at least one code in each group")
    return torch.stack(list(with_)).mean(0) - torch.stack(list(without)).mean(0)


@torch.no_grad()
def linear_boundary(generator: Generator, score: Callable[[Tensor], Tensor], samples: int = 2000,
                    extremes: float = 0.3, truncation: float = 0.7, batch: int | None = None,
                    seed: int = 0) -> Tensor:
    """Unit normal ``[w_dim]`` of a linear boundary in W between high and low ``score`` of rendered samples.

    ``samples`` random codes (ψ = ``truncation``) are rendered and scored (``score``: images
    ``[B, 3, R, R]`` in [-1, 1] → ``[B]``); the top and bottom ``extremes`` fractions are labelled
    +1 and −1 and a least-squares linear classifier on their centred codes gives the normal,
    pointing toward higher scores. ``batch`` samples are rendered at a time (None: as many as hold
    :data:`BATCH_PIXELS` pixels, so that 1024² renders stay within a few GiB). Progress is a bar on a
    terminal, else a log line every 10 % or 30 s (:mod:`embedding.progress`).
    """
    g = generator
    device = g.w_avg.device
    batch = batch or min(100, max(1, BATCH_PIXELS // g.img_resolution**2))
    z = torch.randn(samples, g.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    ws = torch.cat([g.mapping(chunk, None, truncation_psi=truncation)[:, 0] for chunk in z.split(batch)])
    scored: list[Tensor] = []
    with Progress(samples, "boundary samples", "sample") as shown:  # rendered and scored
        for w in ws.split(batch):
            scored.append(score(g.synthesis(w[:, None].expand(-1, g.num_ws, -1), noise_mode="const").clamp(-1, 1)))
            shown.update(len(w))
    scores = torch.cat(scored).float()
    order = scores.argsort()
    k = max(1, int(samples * extremes))
    chosen = torch.cat([order[:k], order[-k:]])
    x = ws[chosen].float()
    x = x - x.mean(0)
    y = torch.cat([-torch.ones(k), torch.ones(k)]).to(x)
    ridge = 1e-3 * x.square().sum(0).mean()
    normal = torch.linalg.solve(x.T @ x + ridge * torch.eye(x.shape[1], device=x.device), x.T @ y)
    return (normal / normal.norm()).cpu()


def sefa(generator: Generator, rows: Sequence[int] | None = None, count: int = 5) -> tuple[Tensor, Tensor]:
    """The ``count`` strongest closed-form directions ``[count, w_dim]`` of the layers reading ``rows``, and their
    eigenvalues ``[count]``, strongest first.

    ``rows`` None takes every row whose style weights the synthesis network offers (``style_weights``:
    StyleGAN2's conv layers, every MobileStyleGAN modulation).
    """
    layers = generator.synthesis.style_weights()
    chosen = range(len(layers)) if rows is None else rows
    weight = torch.cat([layers[r].detach().float() for r in chosen])     # [channels, w_dim]
    weight = weight / weight.norm(dim=1, keepdim=True)
    values, vectors = torch.linalg.eigh(weight.T @ weight)
    top = values.argsort(descending=True)[:count]
    return vectors[:, top].T.contiguous(), values[top]
