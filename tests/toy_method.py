"""A fitting method in one file: one W code per image, shared by every layer, fitted by pixel MSE alone.

It is what a new method takes: the six methods of :class:`~embedding.fitting.method.FittingMethod`.
Groups, phases, optimisers, checkpoints, failures, metrics and the run folder come with the base.
"""

from __future__ import annotations

from torch import Tensor, nn

from embedding.fitting.method import FitResult, FittingMethod
from embedding.fitting.schedule import Schedule
from embedding.latents import Latents
from embedding.methods.image2stylegan import Phase


class WCodeFit(FittingMethod):
    """Fit W (not W+) to each image with the generator's fixed noise.

    Args:
        generator: checkpoint path or ``"default"``.
        steps: Adam steps of the one phase, ``W``.
        lr: its learning rate.
    """

    method_name = "w-code"

    def __init__(self, generator: str = "default", steps: int = 100, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.use_generator(generator)
        self.schedule = Schedule([Phase("W", steps, lr=lr)])
        self.w: nn.Parameter | None = None

    def init_group(self, batch: dict, resuming: bool) -> None:
        start = self.generator.w_avg.detach().expand(len(self.group_stems), 1, -1)
        self.w = nn.Parameter(start.clone().to(self.device))
        self.target = batch["image"]

    def group_parameters(self) -> dict[str, Tensor]:
        return {"w": self.w}

    def enter_phase(self, phase: Phase, batch: dict, saved: dict | None) -> list[Tensor]:
        return [self.w]

    def render(self) -> Tensor:
        return self.generator.synthesis(self.w.expand(-1, self.generator.num_ws, -1), noise_mode="const")

    def per_image_loss(self, render: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        mse = (render - self.target).square().flatten(1).mean(1)
        return mse, {"mse": mse}

    def result(self, i: int) -> FitResult:
        w_plus = self.w[i].detach().float().cpu().expand(self.generator.num_ws, -1)
        noise = [n.detach().float().cpu() for n in self.generator.synthesis.const_noise()]
        return FitResult(Latents(w_plus, noise, self.metadata(self.group_stems[i])))

