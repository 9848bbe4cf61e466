"""DGP stages as data: which synthesis blocks are fine-tuned, with which learning rates and loss weights.

A recipe lists stages; every group of images runs them in order, each with a fresh Adam optimiser
(DGP's progressive reconstruction: the shallowest blocks first, deeper blocks joining later, which
avoids "information lingering" of the target's low-level detail in the early layers).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass
class Stage:
    """One stage of a DGP fit.

    ``blocks``: the synthesis blocks fine-tuned in this stage: an int ``k`` for the ``k`` shallowest
    (``2`` = ``b4, b8``), a list of names (``[b4, b8]``) or None for all of them.
    ``g_lr`` / ``w_lr``: Adam learning rates of the generator weights and of the latent.
    ``features``: weight of the L1 distance between discriminator features (after φ).
    ``mse``: weight of the pixel MSE (after φ, images in [-1, 1]).
    """

    name: str
    steps: int
    blocks: int | list[str] | None = None
    g_lr: float = 2e-4
    w_lr: float = 1e-2
    features: float = 1.0
    mse: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"stage {self.name!r}: steps must be ≥ 0, got {self.steps}")
        if self.g_lr < 0 or self.w_lr < 0:
            raise ValueError(f"stage {self.name!r}: learning rates must be ≥ 0, got g_lr={self.g_lr}, w_lr={self.w_lr}")
        if self.features < 0 or self.mse < 0 or self.features + self.mse == 0:
            raise ValueError(f"stage {self.name!r}: loss weights must be ≥ 0 and not both 0 "
                             f"(features={self.features}, mse={self.mse})")
        if isinstance(self.blocks, int) and self.blocks < 1:
            raise ValueError(f"stage {self.name!r}: blocks must be ≥ 1 (the shallowest blocks), got {self.blocks}")

    def block_names(self, available: list[str]) -> list[str]:
        """The names of this stage's blocks among ``available`` (shallowest first); unknown names are an error."""
        if self.blocks is None:
            return list(available)
        if isinstance(self.blocks, int):
            return list(available[: self.blocks])
        unknown = sorted(set(self.blocks) - set(available))
        if unknown:
            raise ValueError(f"stage {self.name!r}: unknown synthesis block(s) {unknown}; blocks are {available}")
        return [b for b in available if b in self.blocks]

    def make_optimizer(self, params: Iterable[torch.Tensor | dict]) -> torch.optim.Optimizer:
        """A fresh Adam over ``params`` (parameter groups carry their own learning rates)."""
        return torch.optim.Adam(list(params), lr=self.w_lr, betas=tuple(self.betas))


def progressive_stages() -> list[Stage]:
    """The default schedule: DGP's colorization schedule (5 stages, 200-400 steps, one block more each stage)."""
    return [
        Stage("s1", 200, blocks=1, g_lr=2e-4, w_lr=1e-2),
        Stage("s2", 200, blocks=2, g_lr=2e-4, w_lr=5e-3),
        Stage("s3", 300, blocks=3, g_lr=2e-4, w_lr=2.5e-3),
        Stage("s4", 400, blocks=4, g_lr=2e-4, w_lr=2.5e-4),
        Stage("s5", 300, blocks=None, g_lr=8e-5, w_lr=1e-4),
    ]
