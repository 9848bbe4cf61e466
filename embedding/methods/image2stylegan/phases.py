"""Optimisation phases as data: which variables move, with which loss weights, optimiser and masks.

A recipe lists phases; the embedding runs them in order for every group of images, each with a
fresh optimiser (Image2StyleGAN++ Algorithm 1: W+ first with the noise fixed, then the noise with
W+ fixed). The building blocks of the paper are presets: ``WI`` (masked W+ optimisation),
``Mkn`` (masked noise optimisation) and ``Mst`` (masked style transfer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

Variables = Literal["w", "noise"]
OptimizerName = Literal["adam", "sgd"]
Source = Literal["image", "second"]
ROW_RULES = ("inpainting",)


@dataclass
class Phase:
    """One stage of an embedding.

    Masks are named by the batch entry they come from: ``"ones"`` (every pixel), ``"mask"`` (the
    image's mask from the datamodule) or ``"1-mask"`` (its complement). ``mask_dilate`` (pixels)
    and ``mask_blur`` (Gaussian sigma, pixels) grow and soften the mask for this phase only, as
    Algorithm 4's noise phase uses ``Mblur+``, a slightly larger blurred mask.
    ``x`` is the first target of Eq. 1: ``"image"`` (the input) or ``"second"`` (the second
    image the datamodule pairs with it: crossover's I2, the scribble's base image, the style
    image). ``y`` is the second target: ``"image"``, ``"second"`` or ``"render"`` (the render at
    the start of the phase, as Algorithms 4-6 use G(w) for the noise phase).
    ``mse2`` / ``percept2`` compare with ``y`` outside the MSE / perceptual mask (the second WI
    term of Algorithm 3). ``w_rows`` / ``noise_maps`` are the variable masks wm / nm as 0-based
    indices (negative ones count from the end; None = all); ``w_rows: inpainting`` is Algorithm
    4's rule, see :func:`resolve_rows`. ``pull`` weighs λ‖w − w*‖², the pull toward the code the
    phase starts from (Algorithm 5). ``identity`` weighs the squared distance between the face
    descriptors of the render and ``x`` (:func:`embedding.losses.identity_loss`), for faces.
    ``lpips`` weighs the LPIPS distance (AlexNet, :func:`embedding.metrics.lpips`) between the render
    and ``x``, over the whole image at its own size.
    """

    name: str
    steps: int
    optimize: Variables = "w"
    optimizer: OptimizerName = "adam"
    lr: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    w_rows: list[int] | str | None = None
    noise_maps: list[int] | None = None
    mse1: float = 0.0
    mse2: float = 0.0
    percept: float = 0.0
    percept2: float = 0.0
    style: float = 0.0
    pull: float = 0.0
    identity: float = 0.0
    lpips: float = 0.0
    mask_mse: str = "ones"
    mask_percept: str = "ones"
    mask_style: str = "ones"
    mask_dilate: int = 0
    mask_blur: float = 0.0
    x: Source = "image"
    y: Literal["image", "second", "render"] = "image"

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"phase {self.name!r}: steps must be ≥ 0, got {self.steps}")
        if self.lr <= 0:
            raise ValueError(f"phase {self.name!r}: lr must be > 0, got {self.lr}")
        for mask in (self.mask_mse, self.mask_percept, self.mask_style):
            if mask not in ("ones", "mask", "1-mask"):
                raise ValueError(f"phase {self.name!r}: mask must be 'ones', 'mask' or '1-mask', got {mask!r}")
        if self.x not in ("image", "second") or self.y not in ("image", "second", "render"):
            raise ValueError(f"phase {self.name!r}: x must be 'image' or 'second' and y 'image', 'second' or "
                             f"'render', got x={self.x!r}, y={self.y!r}")
        if isinstance(self.w_rows, str) and self.w_rows not in ROW_RULES:
            raise ValueError(f"phase {self.name!r}: w_rows must be a list of rows or one of {ROW_RULES}, "
                             f"got {self.w_rows!r}")
        if self.mask_dilate < 0 or self.mask_blur < 0:
            raise ValueError(f"phase {self.name!r}: mask_dilate and mask_blur must be ≥ 0")

    @property
    def uses_second(self) -> bool:
        """Whether this phase needs the datamodule's second image."""
        return "second" in (self.x, self.y)

    def make_optimizer(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        """A fresh optimiser over ``params`` (Adam, or the plain gradient descent of Algorithm 4)."""
        params = list(params)
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr)
        return torch.optim.Adam(params, lr=self.lr, betas=tuple(self.betas), eps=self.eps)


def resolve_rows(rows: list[int] | str | None, num_ws: int) -> list[int]:
    """The 0-based W+ rows a variable mask ``wm`` names, for a generator with ``num_ws`` rows.

    ``"inpainting"`` is Algorithm 4's rule: rows 1-9, 17 and 18 of 18 (1-based) are the first
    half of the rows, which set the layout, plus the last two, which set the colours; the rows
    between stay at their starting value. For 10 rows (64²) that is rows 0-4, 8 and 9.
    """
    if rows is None:
        return list(range(num_ws))
    if rows == "inpainting":
        return sorted({*range(num_ws // 2), num_ws - 2, num_ws - 1})
    if isinstance(rows, str):
        raise ValueError(f"unknown W+ row rule {rows!r}; rules are {ROW_RULES}")
    bad = [r for r in rows if not -num_ws <= r < num_ws]
    if bad:
        raise ValueError(f"W+ rows {bad} are outside this generator's {num_ws} rows")
    return sorted({r % num_ws for r in rows})


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
