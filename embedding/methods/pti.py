"""Pivotal Tuning Inversion (Roich et al. 2021) as a fitting method: a W pivot, then the generator tuned around it.

Phase ``pivot``: one W code per image (shared by every layer), from the mean code, the generator
fixed. Phase ``tune``: the pivot fixed, each image's own copy of the synthesis weights moves
(DGP's stacked copies). Both minimise pixel MSE plus a perceptual distance to the photo: LPIPS
(PTI's own, the default) and/or Eq. 1's perceptual term. Tuning adds the locality
regulariser: codes ``w_r = w_p + α (w_z − w_p)/‖w_z − w_p‖`` toward random codes ``w_z`` must
render as the pretrained generator renders them. The result is the pivot as a latents record and
the tuned generator as a weight difference, as for DGP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from embedding.fitting.method import FitResult, FittingMethod
from embedding.fitting.schedule import Schedule
from embedding.latents import Latents
from embedding.losses import EmbeddingLoss
from embedding.methods.tuned_weights import WeightCopies
from embedding.metrics import lpips
from embedding.perceptual import PerceptualNetwork, Request, load_perceptual

Batch = dict
PAPER_ALPHA = 30.0  # PTI's distance of the locality regulariser's codes from the pivot


@dataclass
class TuningPhase:
    """One of PTI's two phases: its name, steps and Adam learning rate."""

    name: str
    steps: int
    lr: float

    def make_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr)


class PTIModule(FittingMethod):
    """Fits a W pivot, then tunes each image's copy of the generator around it (PTI).

    Args:
        generator: checkpoint path or ``"default"``.
        pivot_steps / tune_steps: steps of the two phases (the paper: 450 and 350).
        pivot_lr / tune_lr: their Adam learning rates (the paper: 5e-3 and 3e-4).
        mse / percept: weights of the pixel MSE (0-255 units) and of Eq. 1's perceptual distance (off by
            default); no perceptual network is loaded when ``percept`` is 0.
        lpips: weight of the LPIPS distance (AlexNet, :func:`embedding.metrics.lpips`), PTI's own loss:
            PTI weighs MSE on [-1, 1] images and LPIPS 1 : 1, and ``mse`` 1e-5 in 0-255 units is
            1e-5 × 127.5² ≈ 0.16 in [-1, 1] units.
        locality: weight of the locality regulariser λ_R (the paper: 0.1); 0 switches it off.
        locality_alpha: α, how far from the pivot the regulariser's codes lie. None: the paper's 30, or the
            generator's ``code_radius`` where that is smaller (MobileStyleGAN: 15; its renders 30 away are
            garbage, and tuning toward them diverges).
        perceptual: the perceptual network (:mod:`embedding.perceptual`), ``auto`` as for the embedding.
        discriminator / vgg_weights: where the ``discriminator`` and ``vgg16`` networks come from.
        diff_dtype: dtype of the stored weight differences.
        seed: base seed of the regulariser's random codes (each image draws its own stream).
    """

    method_name = "pti"

    def __init__(
        self,
        generator: str = "default",
        pivot_steps: int = 450,
        tune_steps: int = 350,
        pivot_lr: float = 5e-3,
        tune_lr: float = 3e-4,
        mse: float = 1e-5,
        percept: float = 0.0,
        lpips: float = 0.16,
        locality: float = 0.1,
        locality_alpha: float | None = None,
        perceptual: str = "auto",
        discriminator: str | None = None,
        vgg_weights: str = "imagenet",
        diff_dtype: Literal["float16", "float32"] = "float16",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.use_generator(generator)
        self.schedule = Schedule([TuningPhase("pivot", pivot_steps, pivot_lr),
                                  TuningPhase("tune", tune_steps, tune_lr)])
        self.perceptual: PerceptualNetwork | None = None
        self.loss_fn = EmbeddingLoss(None)
        if percept:
            self.perceptual = net = load_perceptual(perceptual, Request(generator, vgg_weights, None, discriminator))
            self.loss_fn = EmbeddingLoss(net.features, net.percept_layers, net.style_layers, net.feature_scale)
        self.latent: nn.Parameter | None = None
        self.copies: WeightCopies | None = None

    def init_group(self, batch: Batch, resuming: bool) -> None:
        """The mean code as every image's pivot, and fresh copies of the synthesis weights."""
        self.check_targets(batch)
        count = len(self.group_stems)
        start = self.generator.w_avg.detach().expand(count, 1, -1)
        self.latent = nn.Parameter(start.clone().to(self.device))
        self.copies = WeightCopies(self.generator.synthesis, count).to(self.device)
        self.target = batch["image"].float()
        self.target_features = self._features(self.target)

    def group_parameters(self) -> dict[str, Tensor]:
        return {"latent": self.latent, **self.copies.named()}

    def enter_phase(self, phase: TuningPhase, batch: Batch, saved: dict | None) -> list[Tensor]:
        """``pivot`` moves the code, ``tune`` the weight copies."""
        tuning = phase.name == "tune"
        self.latent.requires_grad_(not tuning)
        self.copies.requires_grad_(tuning)
        return list(self.copies.parameters()) if tuning else [self.latent]

    def render(self) -> Tensor:
        """Each image's pivot through its own copy of the weights (the generator's fixed noise)."""
        return self.copies.render(self.generator.synthesis, self.all_rows(self.latent))

    def _features(self, images: Tensor) -> dict[str, Tensor] | None:
        """The perceptual features of fixed ``images`` (None without a perceptual term)."""
        return self.loss_fn.target_features(images, self.loss_fn.percept_layers) if self.perceptual else None

    def _distance(self, render: Tensor, target: Tensor,
                  features: dict[str, Tensor] | None) -> tuple[Tensor, dict[str, Tensor]]:
        """Per image: weighted MSE, perceptual distance and LPIPS between ``render`` and ``target``."""
        hp = self.hparams
        total, terms = self.loss_fn(render, target, w_mse1=hp.mse, w_percept=hp.percept, x_features=features)
        if hp.lpips:
            terms["lpips"] = lpips(render, target)
            total = total + hp.lpips * terms["lpips"]
        return total, terms

    def per_image_loss(self, render: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        hp = self.hparams
        total, terms = self._distance(render, self.target, self.target_features)
        if self.phase.name == "tune" and hp.locality:
            terms["locality"] = self._locality()
            total = total + hp.locality * terms["locality"]
        return total, terms

    def locality_alpha(self) -> float:
        """α as set, else the paper's 30 capped at the generator's code radius."""
        if self.hparams.locality_alpha is not None:
            return self.hparams.locality_alpha
        return min(PAPER_ALPHA, self.generator.code_radius or PAPER_ALPHA)

    def _locality(self) -> Tensor:
        """Per image: how differently the tuned and the pretrained weights render codes α away from the pivot."""
        g, alpha = self.generator, self.locality_alpha()
        z = torch.stack([torch.randn(g.z_dim, generator=self.stream(stem, self.group_step))
                         for stem in self.group_stems])
        with torch.no_grad():
            w_z = g.mapping(z.to(self.device), None)[:, :1]
            pivot = self.latent.detach()
            away = w_z - pivot
            w_r = pivot + alpha * away / away.norm(dim=-1, keepdim=True)
            ws = w_r.expand(-1, g.num_ws, -1)
            before = g.synthesis(ws, noise_mode="const")
            before_features = self._features(before)
        after = self.copies.render(g.synthesis, ws)
        return self._distance(after, before, before_features)[0]

    def result(self, i: int) -> FitResult:
        """The pivot as W+ (with the fixed noise), and the tuned weights as a difference from the pretrained ones."""
        meta = self.metadata(self.group_stems[i], latent_space="w",
                             perceptual=self.perceptual.describe() if self.perceptual else None)
        latents = Latents(self.all_rows(self.latent)[i].detach().float().cpu(), self.const_noise(), meta)
        return self.fit_result(i, latents, self.copies, self.hparams.diff_dtype)
