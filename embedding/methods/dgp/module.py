"""The DGP LightningModule: per image, a latent and a copy of the generator's weights fitted to φ(image).

Deep Generative Prior (Pan et al.) restores an image ``x`` seen only through a degradation φ by
solving ``θ*, w* = argmin L(φ(x), φ(G(w; θ)))`` from the pretrained ``θ``, with ``L`` the L1 distance
between discriminator features (optionally plus MSE) and an L2 pull on the latent. It is a
:class:`~embedding.fitting.method.FittingMethod` whose phases are the recipe's stages, so it runs with
``embed fit`` and writes the same run folder, plus each image's fine-tuned generator.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from embedding.checkpoints import DEFAULT_NAME, GENERATOR_ONLY, load_discriminator
from embedding.degradations import Downsample, Grayscale, Mask, colorize, parse_degradations, same_size
from embedding.fitting.method import FitResult, FittingMethod, GroupView
from embedding.fitting.schedule import Schedule, with_steps
from embedding.latents import Latents
from embedding.methods.dgp.stages import Stage, progressive_stages
from embedding.methods.tuned_weights import WeightCopies

Batch = dict
_SEARCH_CHUNK = 50


class DGPModule(FittingMethod):
    """Fits a latent and the generator's weights to each degraded image, stage by stage (DGP).

    Args:
        generator / discriminator: checkpoint paths or ``"default"`` (the embedded 64² face networks).
        degradations: the chain φ, e.g. ``[grayscale]``, ``[mask]``, ``[{kind: downsample, factor: 4}]``.
        stages: the progressive schedule (default: ``progressive_stages()``).
        steps: override the steps of stages by name, e.g. ``{s1: 50, s2: 50}``.
        latent_space: ``"w+"`` (one row per layer) or ``"w"`` (one row shared by every layer).
        finetune_generator: False fits the latent alone with the generator fixed (the baseline).
        features: discriminator blocks whose outputs the loss compares (default: all of them).
        latent_pull: weight of the mean of ``(w − w_avg)²`` (DGP's L2 on the latent, 0.02).
        w_init: ``"search"`` (best of ``init_candidates`` random latents under the first stage's loss),
            ``"mean"`` (``w_avg``) or ``"latents"`` (read from ``latents``, e.g. an ``embed`` run).
        init_truncation: ψ of the random candidates (``w_avg + ψ (w − w_avg)``).
        degraded_inputs: the data are already degraded (a gray photo, a 16² image with
            ``data.resolution: 16``) rather than clean images to degrade; metrics then measure
            φ(result) against the input, as there is no clean image.
        diff_dtype: dtype of the stored weight differences.
        seed: seed of the random candidates (shared by every image, so results do not depend on groups).
    """

    method_name = "dgp"
    step_word = "stage"

    def __init__(
        self,
        generator: str = "default",
        discriminator: str = "default",
        degradations: list[str | dict[str, Any]] | None = None,
        stages: list[Stage] | None = None,
        steps: dict[str, int] | None = None,
        latent_space: Literal["w", "w+"] = "w+",
        finetune_generator: bool = True,
        features: list[str] | None = None,
        latent_pull: float = 0.02,
        w_init: Literal["search", "mean", "latents"] = "search",
        init_candidates: int = 500,
        init_truncation: float = 0.7,
        latents: str | None = None,
        degraded_inputs: bool = False,
        diff_dtype: Literal["float16", "float32"] = "float16",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if generator in GENERATOR_ONLY and discriminator == DEFAULT_NAME:
            raise ValueError(f"DGP's loss compares discriminator features, and {generator} comes without a "
                             "discriminator (the embedded default's is for its own 64² faces); pass "
                             "--model.discriminator with one trained on the generator's data")
        self.save_hyperparameters()
        self.use_generator(generator)
        self.discriminator = load_discriminator(discriminator)
        self.phi = parse_degradations(degradations, "model.degradations")
        self.schedule = Schedule(with_steps(stages or progressive_stages(), steps or {}))
        self.block_names = [f"b{r}" for r in self.generator.synthesis.block_resolutions]
        for stage in self.schedule.phases:
            stage.block_names(self.block_names)
        self.feature_names = self._check_features(features)
        if w_init == "latents" and latents is None:
            raise ValueError("w_init 'latents' needs `latents`: a folder or file of codes")
        if w_init == "search" and init_candidates < 1:
            raise ValueError(f"init_candidates must be ≥ 1, got {init_candidates}")
        self.colorizes = self.phi.has(Grayscale) and not self.phi.has(Downsample)
        self.latent: nn.Parameter | None = None
        self.copies: WeightCopies | None = None
        self._target: dict[str, Any] = {}

    def _check_features(self, features: list[str] | None) -> list[str]:
        """The discriminator blocks of the loss, in network order; unknown names are an error."""
        names = self.discriminator.feature_names
        unknown = sorted(set(features or []) - set(names))
        if unknown:
            raise ValueError(f"model.features: unknown discriminator block(s) {unknown}; blocks are {names}")
        return [n for n in names if features is None or n in features]

    # ---- groups and stages -------------------------------------------------------------------

    @property
    def target_resolution(self) -> int:
        """The generator's resolution, or φ's output size when the inputs are already degraded."""
        res = self.generator.resolution
        return self.phi.output_size(res) if self.hparams.degraded_inputs else res

    def init_group(self, batch: Batch, resuming: bool) -> None:
        """Fresh latents (searched, mean or stored) and fresh weight copies for the images of ``batch``."""
        self.check_targets(batch, self.target_resolution,
                           "degraded inputs" if self.hparams.degraded_inputs else "targets")
        image, mask = batch["image"].float(), batch["mask"].float()
        with torch.no_grad():
            target = image if self.hparams.degraded_inputs else self.phi(image, mask)
            self._target = {"image": target, "mask": mask, "features": self._features(target)}
        w = torch.zeros(len(self.group_stems), 1, 1) if resuming else self._initial_latents()
        rows = self.generator.num_ws if self.hparams.latent_space == "w+" else 1
        self.latent = nn.Parameter(w.expand(-1, rows, self.generator.w_dim).clone().to(self.device))
        self.copies = None
        if self.hparams.finetune_generator:
            self.copies = WeightCopies(self.generator.synthesis, len(self.group_stems)).to(self.device)

    def group_parameters(self) -> dict[str, torch.Tensor]:
        """The latents ``[B, rows, w_dim]`` and every image's copy of the synthesis weights ``[B, ...]``."""
        return {"latent": self.latent, **(self.copies.named() if self.copies is not None else {})}

    def enter_phase(self, stage: Stage, batch: Batch, saved: dict | None) -> list[dict]:
        """Make ``stage`` current: its blocks' weights and the latent move, everything else is frozen."""
        blocks = set(stage.block_names(self.block_names))
        copies = self.copies.named() if self.copies is not None else {}
        moving = [p for name, p in copies.items() if name.split(".", 1)[0] in blocks and stage.g_lr > 0]
        for p in copies.values():
            p.requires_grad_(False)
        for p in moving:
            p.requires_grad_(True)
        self.latent.requires_grad_(stage.w_lr > 0)
        groups = [{"params": [self.latent], "lr": stage.w_lr}] if stage.w_lr > 0 else []
        if moving:
            groups.append({"params": moving, "lr": stage.g_lr})
        if not groups:
            raise ValueError(f"stage {stage.name!r} moves nothing: give it a w_lr, or a g_lr with the generator "
                             "fine-tuned")
        return groups

    # ---- rendering and loss ------------------------------------------------------------------

    def render(self) -> torch.Tensor:
        """The raw renders of the group, each with its own weights, in [-1, 1] (not clamped)."""
        if self.copies is None:
            return self.generator.synthesis(self.all_rows(self.latent), noise_mode="const")
        return self.copies.render(self.generator.synthesis, self.all_rows(self.latent))

    def restored(self, render: torch.Tensor) -> torch.Tensor:
        """The result shown and saved: the render, or for colorization the input's lightness with its colour."""
        if not self.colorizes:
            return render
        target, mask = self._target["image"], self._target["mask"]
        if self.phi.has(Mask):
            target = mask * target + (1 - mask) * render
        return colorize(target, render)

    def _features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The chosen discriminator blocks' outputs for (degraded) images, resized to D's input size."""
        d = self.discriminator
        img = same_size(images, d.img_resolution)
        x, out = None, []
        for name in d.feature_names[: d.feature_names.index(self.feature_names[-1]) + 1]:
            x = getattr(d, name)(x, img)
            if name in self.feature_names:
                out.append(x)
        return out

    def _distance(self, degraded: torch.Tensor, target: torch.Tensor, target_features: list[torch.Tensor],
                  stage: Stage, feats: list[torch.Tensor] | None = None,
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-image stage loss (without the latent pull) between degraded renders and a degraded target.

        A target of batch 1 is compared with every render; ``feats`` are the renders' features, if known.
        """
        terms = {}
        if stage.features:
            feats = self._features(degraded) if feats is None else feats
            terms["features"] = sum((f - t).abs().flatten(1).mean(1) for f, t in zip(feats, target_features,
                                                                                     strict=True))
        if stage.mse:
            terms["mse"] = (degraded - target).square().flatten(1).mean(1)
        total = sum(getattr(stage, k) * v for k, v in terms.items())
        return total, terms

    def per_image_loss(self, render: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DGP's loss for each image, ``[B]``, and its terms: D-feature L1 (+ MSE) after φ, + latent pull."""
        t = self._target
        total, terms = self._distance(self.phi(render, t["mask"]), t["image"], t["features"], self.phase)
        if self.hparams.latent_pull:
            terms["pull"] = (self.latent - self.generator.w_avg).square().flatten(1).mean(1)
            total = total + self.hparams.latent_pull * terms["pull"]
        return total, terms

    # ---- initial latents ---------------------------------------------------------------------

    def _initial_latents(self) -> torch.Tensor:
        """``[B, rows, w_dim]`` starting latents on the CPU (rows = num_ws, or 1 for W space)."""
        mode, g = self.hparams.w_init, self.generator
        if mode == "mean":
            w = g.w_avg.detach().cpu().expand(len(self.group_stems), 1, -1)
        elif mode == "latents":
            w = torch.stack([self.stored_latents(stem).w_plus for stem in self.group_stems])
        else:
            w = self._search().cpu()
        if self.hparams.latent_space == "w" and w.shape[1] > 1:
            w = w.mean(1, keepdim=True)
        return w.float()

    @torch.no_grad()
    def _search(self) -> torch.Tensor:
        """For each image, the best of ``init_candidates`` random latents under the first stage's loss."""
        g, count = self.generator, self.hparams.init_candidates
        z = torch.randn(count, g.z_dim, generator=torch.Generator().manual_seed(self.hparams.seed)).to(self.device)
        ws = g.mapping(z, None, truncation_psi=self.hparams.init_truncation)[:, :1]
        stage, t = self.schedule.phases[0], self._target
        per_image_mask = self.phi.has(Mask)
        scores = []
        for chunk in ws.split(_SEARCH_CHUNK):
            renders = g.synthesis(chunk.expand(-1, g.num_ws, -1), noise_mode="const")
            if per_image_mask:
                rows = [self._pairwise(self.phi(renders, t["mask"][i : i + 1]), None, i, stage)
                        for i in range(len(self.group_stems))]
            else:
                degraded = self.phi(renders)
                feats = self._features(degraded) if stage.features else None
                rows = [self._pairwise(degraded, feats, i, stage) for i in range(len(self.group_stems))]
            scores.append(torch.stack(rows))
        best = torch.cat(scores, 1).argmin(1)
        return ws[best]

    def _pairwise(self, degraded: torch.Tensor, feats: list[torch.Tensor] | None, i: int,
                  stage: Stage) -> torch.Tensor:
        """Stage loss of every candidate against image ``i`` (``feats``: the candidates' features, if known)."""
        t = self._target
        return self._distance(degraded, t["image"][i : i + 1], [tf[i : i + 1] for tf in t["features"]], stage,
                              feats)[0]

    # ---- results and failures ----------------------------------------------------------------

    def view(self, batch: Batch) -> GroupView:
        """The restored images beside the degraded input, measured against the clean image inside the holes.

        With degraded inputs there is no clean image: φ(result) is compared with the input instead.
        """
        images = self.restored(self.current_render())
        res, mask = self.generator.resolution, batch["mask"].float()
        shown_mask = mask if mask.shape[-1] == res else F.interpolate(mask, size=(res, res), mode="nearest")
        shown = same_size(self._target["image"], res)
        if self.hparams.degraded_inputs:
            return GroupView(images, shown, shown_mask, self.phi(images, mask), batch["image"], mask)
        holes = 1 - mask if self.phi.has(Mask) else torch.ones_like(mask)
        return GroupView(images, shown, shown_mask, images, batch["image"], holes)

    def result(self, i: int) -> FitResult:
        """Image ``i``'s latent as W+, and its fine-tuned generator as a weight difference from the pretrained one.

        The noise is the generator's fixed maps, the ones every render of a DGP fit uses.
        """
        meta = self.metadata(self.group_stems[i], latent_space=self.hparams.latent_space,
                             degradations=json.dumps(self.hparams.degradations))
        latents = Latents(self.all_rows(self.latent)[i].detach().float().cpu(), self.const_noise(), meta)
        return self.fit_result(i, latents, self.copies, self.hparams.diff_dtype)
