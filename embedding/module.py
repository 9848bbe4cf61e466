"""The embedding LightningModule: the W+ codes and noise maps of a group of images are its parameters.

For every group of images the datamodule delivers, the module starts fresh parameters (one W+
row block and one set of noise maps per image), and the ``PhaseSchedule`` callback walks it
through the recipe's phases. The loss is Image2StyleGAN++ Eq. 1 computed per image and summed,
so each image's gradient is exactly its own: fitting images together equals fitting each alone.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from pathlib import Path
from typing import Literal

import torch
from lightning import LightningModule
from torch import nn

from .checkpoints import load_generator
from .latents import find_latents, generator_file, read_latents, sha256
from .losses import PAPER_FEATURE_SCALE, PERCEPT_LAYERS, STYLE_LAYERS, EmbeddingLoss, latent_pull
from .phases import Phase, Schedule, reconstruction_phases, with_steps
from .vgg import load_vgg16

Batch = dict


class EmbeddingModule(LightningModule):
    """Fits W+ (and noise) to each target image with a frozen StyleGAN2, phase by phase.

    Args:
        generator: checkpoint path (NVIDIA ``.pkl``, rosinality or project ``.pt``) or ``"default"``.
        phases: the optimisation phases, in order (default: Algorithm 2, 5000 WI + 3000 Mkn steps).
        steps: override the steps of phases by name, e.g. ``{WI: 200, Mkn: 100}`` for a quick run
            (``--model.steps "{WI: 200, Mkn: 100}"`` on the command line).
        w_init: starting code: ``"mean"`` (the mean latent, faces), ``"uniform"`` (U[-1, 1],
            non-faces) or ``"latents"`` (read from ``latents``).
        w_init_offset: add U[-a, a] to the starting code (different plausible inpaintings).
        latents: folder (or run folder) holding ``<stem>.pt`` / ``<stem>.npz``, or one such file for
            every image; used when ``w_init`` or ``noise_init`` is ``"latents"``.
        noise_init: starting noise: ``"random"`` (N(0, I), the paper's), ``"const"`` (the
            checkpoint's fixed maps) or ``"latents"``.
        vgg_weights: ``"imagenet"`` (torch hub cache), a path to a VGG-16 state dict, or ``"random"``.
        vgg_resize: resize images to this size before VGG (Image2StyleGAN used 256).
        percept_layers / style_layers: VGG-16 layers of the perceptual and style terms.
        seed: base seed; each image draws its own stream from (seed, stem), so results do not
            depend on which images share a group.
    """

    def __init__(
        self,
        generator: str = "default",
        phases: list[Phase] | None = None,
        steps: dict[str, int] | None = None,
        w_init: Literal["mean", "uniform", "latents"] = "mean",
        w_init_offset: float = 0.0,
        latents: str | None = None,
        noise_init: Literal["random", "const", "latents"] = "random",
        vgg_weights: str = "imagenet",
        vgg_resize: int | None = None,
        percept_layers: list[str] | None = None,
        style_layers: list[str] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.generator_source = generator
        self.generator = load_generator(generator)
        self.generator_sha256 = sha256(generator_file(generator))
        self.schedule = Schedule(with_steps(phases or reconstruction_phases(), steps or {}))
        self.loss_fn = self._build_loss(vgg_weights, vgg_resize, percept_layers, style_layers)
        if "latents" in (w_init, noise_init) and latents is None:
            raise ValueError("w_init/noise_init 'latents' needs `latents`: a folder or file of codes")
        self.w_plus: nn.Parameter | None = None
        self.noise = nn.ParameterList()
        self.group_stems: list[str] = []
        self.group_step = 0
        self.fail_step = torch.zeros(0, dtype=torch.long)
        self._write_failed: dict[str, str] = {}
        self._past_failures: list[tuple[str, str]] = []
        self.resume_state: dict | None = None
        self.phase: Phase | None = None
        self._phase_targets: dict = {}
        self._render_cache: tuple[int, torch.Tensor] | None = None

    def _build_loss(self, weights: str, resize: int | None, percept: list[str] | None,
                    style: list[str] | None) -> EmbeddingLoss:
        """VGG-16 is loaded only when some phase has a perceptual or style term."""
        needs_vgg = any(p.percept or p.style for p in self.schedule.phases)
        vgg = load_vgg16(weights, resize) if needs_vgg else None
        return EmbeddingLoss(vgg, percept or PERCEPT_LAYERS, style or STYLE_LAYERS, PAPER_FEATURE_SCALE)

    @property
    def steps_per_group(self) -> int:
        """Optimisation steps each group of images goes through (all phases)."""
        return self.schedule.total_steps

    def configure_optimizers(self) -> None:
        """Each phase gets a fresh optimiser from the ``PhaseSchedule`` callback."""
        return None

    # ---- groups and phases -------------------------------------------------------------------

    def is_new_group(self, batch: Batch) -> bool:
        return list(batch["stem"]) != self.group_stems or self.group_step >= self.steps_per_group

    def start_group(self, batch: Batch, resume: dict | None = None) -> None:
        """Fresh parameters for the images of ``batch``: one W+ block and one set of noise maps each.

        With ``resume``, a mid-group checkpoint of exactly these images, the group continues from
        it (parameters, step, failures and, once its phase starts, the optimiser state).
        """
        size, res = tuple(batch["image"].shape[-2:]), self.generator.resolution
        if size != (res, res):
            raise ValueError(f"targets are {size[0]}×{size[1]} but the generator renders {res}×{res}; "
                             "leave data.resolution unset to match the generator")
        self._past_failures.extend(self.failed.items())
        self.group_stems = list(batch["stem"])
        streams = [self._stream(stem) for stem in self.group_stems]
        w = torch.stack([self._initial_w(stem, g) for stem, g in zip(self.group_stems, streams, strict=True)])
        noise = [torch.cat(maps) for maps in zip(*[self._initial_noise(stem, g)
                                                   for stem, g in zip(self.group_stems, streams, strict=True)],
                                                 strict=True)]
        self.w_plus = nn.Parameter(w.to(self.device))
        self.noise = nn.ParameterList([nn.Parameter(n.to(self.device)) for n in noise])
        self.register_buffer("w_start", w.to(self.device).clone(), persistent=False)
        self.group_step = 0
        self.phase = None
        self.fail_step = torch.full((len(self.group_stems),), -1, dtype=torch.long, device=self.device)
        self._write_failed = {}
        self._render_cache = None
        self.resume_state = self._restore(resume)

    def _restore(self, state: dict | None) -> dict | None:
        """Continue from a mid-group checkpoint of exactly these images, if one is given."""
        if state is None or state["stems"] != self.group_stems:
            return None
        with torch.no_grad():
            self.w_plus.copy_(state["w_plus"])
            self.w_start.copy_(state["w_start"])
            for n, saved in zip(self.noise, state["noise"], strict=True):
                n.copy_(saved)
        self.group_step = state["group_step"]
        self.fail_step.copy_(state["fail_step"])
        self._write_failed = dict(state["write_failed"])
        return state

    def group_state(self) -> dict:
        """Everything needed to continue this group later: parameters, step, optimiser state, failures."""
        return {"stems": list(self.group_stems), "group_step": self.group_step,
                "phase": self.phase.name if self.phase else None,
                "w_plus": self.w_plus.detach().cpu(), "w_start": self.w_start.cpu(),
                "noise": [n.detach().cpu() for n in self.noise], "fail_step": self.fail_step.cpu(),
                "write_failed": dict(self._write_failed),
                "optimizer": self.trainer.optimizers[0].state_dict() if self.phase else None,
                "y": self._phase_targets["y"].detach().cpu() if self.phase and self.phase.y == "render" else None}

    def enter_phase(self, phase: Phase, batch: Batch) -> list[torch.Tensor]:
        """Make ``phase`` current and return the tensors its optimiser must move."""
        self.phase = phase
        moving_w = phase.optimize == "w"
        self.w_plus.requires_grad_(moving_w)
        chosen = set(range(len(self.noise)) if phase.noise_maps is None else phase.noise_maps)
        for i, n in enumerate(self.noise):
            n.requires_grad_(not moving_w and i in chosen)
        self._phase_targets = self._targets(phase, batch)
        if moving_w:
            return [self.w_plus]
        return [n for n in self.noise if n.requires_grad]

    def _targets(self, phase: Phase, batch: Batch) -> dict:
        """x, y, their VGG features, the masks and the W+ row mask of this phase, computed once.

        A ``"render"`` y is the render at the start of the phase, taken from the checkpoint when
        the phase resumes in its middle.
        """
        x = batch["image"]
        y = x
        if phase.y == "render":
            saved = self.resume_state
            if saved is not None and saved["phase"] == phase.name and saved.get("y") is not None:
                y = saved["y"].to(x.device)
            else:
                y = self.current_render().detach()
        targets = {"x": x, "y": y, "x_features": None, "y_features": None,
                   "masks": {name: _select_mask(batch["mask"], name)
                             for name in (phase.mask_mse, phase.mask_percept, phase.mask_style)},
                   "rows": self._row_mask(phase) if phase.optimize == "w" and phase.w_rows is not None else None}
        if phase.percept:
            targets["x_features"] = self.loss_fn.target_features(x, self.loss_fn.percept_layers)
        if phase.style:
            targets["y_features"] = self.loss_fn.target_features(y, self.loss_fn.style_layers)
        return targets

    # ---- rendering and loss ------------------------------------------------------------------

    def render(self) -> torch.Tensor:
        """The current images of the group, in [-1, 1] (not clamped, so gradients flow everywhere)."""
        return self.generator.synthesis(self.w_plus, noise=list(self.noise))

    @torch.no_grad()
    def current_render(self) -> torch.Tensor:
        """The render after the last step, in fp32, computed once per step."""
        if self._render_cache is None or self._render_cache[0] != self.group_step:
            with torch.autocast(self.device.type, enabled=False):
                self._render_cache = (self.group_step, self.render().float())
        return self._render_cache[1]

    def per_image_loss(self, render: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Eq. 1 (plus the optional pull toward the starting code) for each image: ``[B]`` and the terms."""
        phase, t = self.phase, self._phase_targets
        masks = t["masks"]
        total, terms = self.loss_fn(
            render, t["x"], t["y"], w_style=phase.style, w_mse1=phase.mse1, w_mse2=phase.mse2,
            w_percept=phase.percept, mask_style=masks[phase.mask_style], mask_mse=masks[phase.mask_mse],
            mask_percept=masks[phase.mask_percept], x_features=t["x_features"], y_features=t["y_features"])
        if phase.pull:
            terms["pull"] = latent_pull(self.w_plus, self.w_start)
            total = total + phase.pull * terms["pull"]
        return total, terms

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        render = self.render()
        per_image, terms = self.per_image_loss(render)
        # Failures are tracked on the device, so a step never waits for it; they are read out
        # (one synchronisation) only when results are written or checkpointed.
        newly_bad = ~torch.isfinite(per_image.detach()) & (self.fail_step < 0)
        self.fail_step = torch.where(newly_bad, self.group_step, self.fail_step)
        active = self.fail_step < 0
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(torch.where(active, per_image, 0).sum())
        self._mask_gradients(active)
        optimizer.step()
        self.group_step += 1
        count = active.sum().clamp_min(1)
        self.log("loss", torch.where(active, per_image.detach(), 0).sum() / count, prog_bar=True,
                 batch_size=len(per_image))
        self.log_dict({f"loss/{k}": torch.where(active, v.detach(), 0).sum() / count for k, v in terms.items()},
                      batch_size=len(per_image))
        return per_image.detach()

    @property
    def failed(self) -> dict[str, str]:
        """Images of the current group that failed, with the reason (phase and step of a divergence)."""
        out = {}
        for i, step in enumerate(self.fail_step.tolist()):
            if step >= 0:
                phase = self.schedule.phase_at(step).name
                out[self.group_stems[i]] = f"the loss is not finite in phase {phase} at step {step}"
        return {**out, **self._write_failed}

    @property
    def failures(self) -> list[tuple[str, str]]:
        """Every image that failed in this run, with the reason."""
        return [*self._past_failures, *self.failed.items()]

    def mark_failed(self, stem: str, reason: str) -> None:
        """Record a failure found outside the optimisation (its results could not be written)."""
        self._write_failed[stem] = reason

    def _mask_gradients(self, active: torch.Tensor) -> None:
        """Zero the gradients of failed images, and of W+ rows outside this phase's variable mask.

        A failed image's gradient can hold NaN; ``where`` (not a product) removes it, so neither the
        optimiser nor a mixed-precision gradient scaler ever sees it.
        """
        for p in (self.w_plus, *self.noise):
            if p.grad is not None:
                keep = active.view(-1, *[1] * (p.grad.ndim - 1))
                p.grad.copy_(torch.where(keep, p.grad, 0))
        if self._phase_targets["rows"] is not None:
            self.w_plus.grad.mul_(self._phase_targets["rows"])

    def _row_mask(self, phase: Phase) -> torch.Tensor:
        """1 for the W+ rows ``phase`` may move (wm), 0 elsewhere."""
        mask = torch.zeros(self.w_plus.shape[1], 1, device=self.device, dtype=self.w_plus.dtype)
        mask[phase.w_rows] = 1
        return mask

    def latents_metadata(self, stem: str) -> dict:
        """What a latents file records to re-render and rerun: generator, its hash, the recipe."""
        recipe = json.dumps(dict(self.hparams), default=lambda o: dataclasses.asdict(o), sort_keys=True)
        return {"stem": stem, "generator": self.generator_source, "generator_sha256": self.generator_sha256,
                "resolution": self.generator.resolution, "recipe": recipe}

    # ---- initial values ----------------------------------------------------------------------

    def _stream(self, stem: str) -> torch.Generator:
        """A random stream that depends only on the seed and the image, not on its group."""
        return torch.Generator().manual_seed(self.hparams.seed * 1_000_003 + zlib.crc32(stem.encode()))

    def _initial_w(self, stem: str, g: torch.Generator) -> torch.Tensor:
        num_ws, w_dim = self.generator.num_ws, self.generator.w_dim
        mode = self.hparams.w_init
        if mode == "mean":
            w = self.generator.w_avg.detach().cpu().expand(num_ws, w_dim).clone()
        elif mode == "uniform":
            w = torch.rand(num_ws, w_dim, generator=g) * 2 - 1
        else:
            w = self._stored(stem)["w_plus"]
        if self.hparams.w_init_offset:
            a = self.hparams.w_init_offset
            w = w + (torch.rand(num_ws, w_dim, generator=g) * 2 - 1) * a
        return w.float()

    def _initial_noise(self, stem: str, g: torch.Generator) -> list[torch.Tensor]:
        mode = self.hparams.noise_init
        synthesis = self.generator.synthesis
        if mode == "const":
            return [n.detach().cpu().clone() for n in synthesis.const_noise()]
        if mode == "latents":
            return [n.reshape(1, 1, *n.shape[-2:]).float() for n in self._stored(stem)["noise"]]
        return [torch.randn(shape, generator=g) for shape in synthesis.noise_shapes]

    def _stored(self, stem: str) -> dict:
        """The stored code for ``stem`` (W+ ``[num_ws, w_dim]`` and, from ``.pt`` files, the noise)."""
        path = find_latents(Path(self.hparams.latents), stem)
        return read_latents(path, self.generator.num_ws, self.generator.w_dim)


def _select_mask(mask: torch.Tensor, name: str) -> torch.Tensor | None:
    if name == "ones":
        return None
    return mask if name == "mask" else 1 - mask

