"""Optimisation phases as data: which variables move, with which loss weights, optimiser and masks.

A recipe lists phases; the embedding runs them in order for every group of images, each with a
fresh optimiser (Image2StyleGAN++ Algorithm 1: W+ first with the noise fixed, then the noise with
W+ fixed). The building blocks of the paper are presets: ``WI`` (masked W+ optimisation),
``Mkn`` (masked noise optimisation) and ``Mst`` (masked style transfer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import torch

Variables = Literal["w", "noise"]
OptimizerName = Literal["adam", "sgd"]


@dataclass
class Phase:
    """One stage of an embedding.

    Masks are named by the batch entry they come from: ``"ones"`` (every pixel), ``"mask"`` (the
    image's mask from the datamodule) or ``"1-mask"`` (its complement).
    ``y`` is the second target of Eq. 1: ``"image"`` (the target photo) or ``"render"`` (the
    render at the start of the phase, as Algorithms 4-6 use G(w) for the noise phase).
    ``w_rows`` / ``noise_maps`` are the variable masks wm / nm as 0-based indices (None = all).
    ``pull`` weighs λ‖w − w_init‖², the pull toward the initial code (Algorithm 5).
    """

    name: str
    steps: int
    optimize: Variables = "w"
    optimizer: OptimizerName = "adam"
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    w_rows: list[int] | None = None
    noise_maps: list[int] | None = None
    mse1: float = 0.0
    mse2: float = 0.0
    percept: float = 0.0
    style: float = 0.0
    pull: float = 0.0
    mask_mse: str = "ones"
    mask_percept: str = "ones"
    mask_style: str = "ones"
    y: Literal["image", "render"] = "image"

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"phase {self.name!r}: steps must be ≥ 0, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"phase {self.name!r}: lr must be > 0, got {self.lr}")
        for mask in (self.mask_mse, self.mask_percept, self.mask_style):
            if mask not in ("ones", "mask", "1-mask"):
                raise ValueError(f"phase {self.name!r}: mask must be 'ones', 'mask' or '1-mask', got {mask!r}")

    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """A fresh optimiser over ``params`` (Adam, or the plain gradient descent of Algorithm 4)."""
        params = list(params)
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr)
        return torch.optim.Adam(params, lr=self.lr, betas=tuple(self.betas), eps=self.eps)


def wi(steps: int = 5000, **overrides) -> Phase:
    """WI: W+ optimisation, noise fixed; λmse=1e-5, λp=1e-5, Adam lr 0.01 (Sec. 6)."""
    return Phase(**{"name": "WI", "steps": steps, "optimize": "w", "lr": 0.01, "mse1": 1e-5, "percept": 1e-5,
                    **overrides})


def mkn(steps: int = 3000, **overrides) -> Phase:
    """Mkn: noise optimisation, W+ fixed; MSE only (1e-5 inside, 1e-5 outside), Adam lr 5 (Sec. 6)."""
    return Phase(**{"name": "Mkn", "steps": steps, "optimize": "noise", "lr": 5.0, "mse1": 1e-5, "mse2": 1e-5,
                    **overrides})


def mst(steps: int = 1000, **overrides) -> Phase:
    """Mst: masked style transfer on all of W+; Gram style loss λs=5e-7 only, Adam lr 0.01 (Sec. 6)."""
    return Phase(**{"name": "Mst", "steps": steps, "optimize": "w", "lr": 0.01, "style": 5e-7, **overrides})


def reconstruction_phases() -> list[Phase]:
    """Algorithm 2, improved reconstruction: 5000 WI steps, then 3000 Mkn steps."""
    return [wi(), mkn()]


def with_steps(phases: list[Phase], steps: dict[str, int]) -> list[Phase]:
    """Copies of ``phases`` with the step counts named in ``steps`` replaced."""
    unknown = set(steps) - {p.name for p in phases}
    if unknown:
        raise ValueError(f"steps given for unknown phase(s) {sorted(unknown)}; phases are {[p.name for p in phases]}")
    return [replace(p, steps=steps.get(p.name, p.steps)) for p in phases]


@dataclass
class Schedule:
    """The phases of one group, with the step at which each begins."""

    phases: list[Phase] = field(default_factory=reconstruction_phases)

    def __post_init__(self) -> None:
        names = [p.name for p in self.phases]
        if not self.phases:
            raise ValueError("at least one phase is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique (they name the per-phase renders): {names}")

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def phase_at(self, step: int) -> Phase:
        """The phase that runs optimisation step ``step`` (0-based within a group)."""
        for phase in self.phases:
            if step < phase.steps:
                return phase
            step -= phase.steps
        raise IndexError(f"step {step} is past the last phase")

    def ended_at(self, steps_done: int) -> Phase | None:
        """The phase that finishes exactly when ``steps_done`` steps of the group have run, if any."""
        end = 0
        for phase in self.phases:
            end += phase.steps
            if phase.steps > 0 and end == steps_done:
                return phase
        return None
