"""Per-image fitting methods: the lifecycle they share, and the six methods each one writes.

A fitting method fits a group of images at a time, every image with parameters of its own,
through the entries of a :class:`~embedding.methods.image2stylegan.phases.Schedule` (the embedding's phases, DGP's
stages). :class:`FittingMethod` runs the lifecycle in its own hooks:

- ``on_train_batch_start``: other images than the last step's start a new group (fresh
  parameters, or the group's mid-group checkpoint from the run folder); the first step of a
  phase installs the phase's fresh optimiser (or the checkpoint's state).
- ``training_step``: render, per-image loss, backward through the images still fitting, step.

A method implements ``init_group`` (the group's parameters), ``group_parameters`` (them by name),
``enter_phase`` (which move), ``render``, ``per_image_loss`` and ``result`` (what the run folder
keeps of an image). Callbacks read only ``progress``, ``view``, ``failed``/``mark_failed``,
``result`` and ``group_state``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning import LightningModule
from torch import Tensor

from embedding.checkpoints import load_generator, provenance
from embedding.fitting.results import FitResult
from embedding.fitting.resume import ResumeStore
from embedding.fitting.run_folder import RunFolder
from embedding.fitting.schedule import Schedule
from embedding.latents import Latents, find_latents
from embedding.weight_diff import diff_record

log = logging.getLogger(__name__)
Batch = dict
OptimizerParams = list[Tensor] | list[dict[str, Any]]


@dataclass(frozen=True)
class Progress:
    """Where the current group stands: its images, its step, its phase, and the phase that just ended."""

    stems: list[str]
    step: int
    total: int
    phase: str | None
    phase_step: int
    phase_steps: int
    ended: str | None

    @property
    def finished(self) -> bool:
        """Whether every step of the group has run."""
        return self.step >= self.total


@dataclass
class GroupView:
    """What callbacks show and measure of the group after a step (fp32, ``[B, 3, H, W]`` in [-1, 1]).

    ``images`` are the results as saved. ``target`` and ``mask`` are shown beside them.
    ``compared`` is measured against ``reference`` (PSNR, SSIM), masked variants inside ``measure_mask``.
    """

    images: Tensor
    target: Tensor
    mask: Tensor
    compared: Tensor
    reference: Tensor
    measure_mask: Tensor


class FittingMethod(LightningModule, ABC):
    """A LightningModule that fits every image of a group with its own parameters, phase by phase.

    Subclasses call ``super().__init__()``, ``use_generator(source)`` and set ``schedule``; an entry
    of the schedule has ``name``, ``steps`` and ``make_optimizer(params)``.
    """

    method_name = "fit"          # recorded in each latents file's metadata
    step_word = "phase"          # what the schedule's entries are called in messages
    schedule: Schedule

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.group_stems: list[str] = []
        self.group_step = 0
        self.phase = None
        self.fail_step = torch.zeros(0, dtype=torch.long)
        self._write_failed: dict[str, str] = {}
        self._past_failures: list[tuple[str, str]] = []
        self._saved: dict | None = None
        self._render_cache: tuple[int, Tensor] | None = None
        self.log_step = 0  # TensorBoard's step for the losses: it goes on across reruns in the same folder

    def use_generator(self, source: str) -> None:
        """Load the pretrained generator and remember its name and hash (latents files record both)."""
        self.generator = load_generator(source)
        self.provenance = provenance(source)

    # ---- what a method implements ------------------------------------------------------------

    @abstractmethod
    def init_group(self, batch: Batch, resuming: bool) -> None:
        """Create fresh parameters for the images of ``batch`` (``self.group_stems``).

        With ``resuming`` their values are replaced from a checkpoint next, so costly starting
        values (a search) may be skipped; their shapes must still be right.
        """

    @abstractmethod
    def group_parameters(self) -> dict[str, Tensor]:
        """The group's parameters by name, the image on dim 0: what checkpoints hold and failures freeze."""

    @abstractmethod
    def enter_phase(self, phase: Any, batch: Batch, saved: dict | None) -> OptimizerParams:
        """Make ``phase`` current (which parameters move, its targets); return what its optimiser moves.

        ``saved`` is ``phase_state()`` of a checkpoint taken in the middle of this phase, else None.
        """

    @abstractmethod
    def render(self) -> Tensor:
        """The group's images from the current parameters, ``[B, 3, H, W]`` in [-1, 1] (not clamped)."""

    @abstractmethod
    def per_image_loss(self, render: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The current phase's loss of each image ``[B]``, and its named terms ``[B]`` each."""

    @abstractmethod
    def result(self, i: int) -> FitResult:
        """What the run folder keeps of image ``i`` of the group once it is finished."""

    def phase_state(self) -> dict:
        """Values a phase fixed when it began (beyond the parameters), for a checkpoint in its middle."""
        return {}

    @property
    def target_resolution(self) -> int:
        """The side of the square images the datamodule must deliver."""
        return self.generator.resolution

    def view(self, batch: Batch) -> GroupView:
        """The renders beside the inputs, measured against them."""
        images = self.current_render()
        return GroupView(images, batch["image"], batch["mask"], images, batch["image"], batch["mask"])

    # ---- the lifecycle -----------------------------------------------------------------------

    def configure_optimizers(self) -> None:
        """Each phase installs a fresh optimiser of its own when it begins (``on_train_batch_start``)."""
        return None

    def on_fit_start(self) -> None:
        """Log after the steps a previous run in this folder logged."""
        self.log_step = RunFolder(self.trainer.default_root_dir).last_logged_step()

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        """Start a group when the images change (continuing its checkpoint), and a phase when one ends."""
        if list(batch["stem"]) != self.group_stems or self.group_step >= self.steps_per_group:
            store = ResumeStore(self.trainer.default_root_dir)
            self.start_group(batch, store.read(list(batch["stem"])))
            if self._saved is not None:
                log.info("resuming %s at step %d of %d from %s", ", ".join(self.group_stems), self.group_step,
                         self.steps_per_group, store.path(self.group_stems))
        optimizer = self.switch_phase(batch)
        if optimizer is not None:
            self.trainer.strategy.optimizers = [optimizer]

    def start_group(self, batch: Batch, saved: dict | None = None) -> None:
        """Make the images of ``batch`` the group: fresh parameters, or those of ``saved`` (``group_state()``)."""
        self._past_failures.extend(self.failed.items())
        self.group_stems = list(batch["stem"])
        self.group_step = 0
        self.phase = None
        self._render_cache = None
        self.fail_step = torch.full((len(self.group_stems),), -1, dtype=torch.long, device=self.device)
        self._write_failed = {}
        self.init_group(batch, resuming=saved is not None)
        self._saved = saved
        if saved is not None:
            self._restore(saved)

    def _restore(self, saved: dict) -> None:
        """Continue from a checkpoint of this group: parameters, step and failures (the optimiser follows)."""
        params = self.group_parameters()
        stored = saved["parameters"]
        if stored.keys() != params.keys() or any(stored[k].shape != p.shape for k, p in params.items()):
            raise ValueError(f"the checkpoint of {', '.join(self.group_stems)} does not fit this recipe's "
                             f"parameters; delete {self.trainer.default_root_dir}/resume to start the group afresh")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(stored[name])
        self.group_step = saved["group_step"]
        self.log_step = saved.get("log_step", self.log_step)  # TensorBoard drops the later points it logged
        self.fail_step.copy_(saved["fail_step"])
        self._write_failed = dict(saved["write_failed"])

    def switch_phase(self, batch: Batch) -> torch.optim.Optimizer | None:
        """Enter the phase of the current step if it is not current yet; return its new optimiser (else None)."""
        phase = self.schedule.phase_at(self.group_step)
        if phase is self.phase:
            return None
        saved = self._saved if self._saved is not None and self._saved["phase"] == phase.name else None
        params = self.enter_phase(phase, batch, saved["phase_state"] if saved else None)
        self.phase = phase
        optimizer = phase.make_optimizer(params)
        if saved is not None and saved["optimizer"] is not None:
            optimizer.load_state_dict(saved["optimizer"])
        self._saved = None
        return optimizer

    def group_state(self) -> dict:
        """Everything needed to continue this group later: parameters, step, phase, optimiser, failures."""
        return {"stems": list(self.group_stems), "group_step": self.group_step, "log_step": self.log_step,
                "phase": self.phase.name if self.phase else None, "fail_step": self.fail_step.cpu(),
                "write_failed": dict(self._write_failed),
                "parameters": {k: v.detach().cpu() for k, v in self.group_parameters().items()},
                "optimizer": self.trainer.optimizers[0].state_dict() if self.phase else None,
                "phase_state": self.phase_state() if self.phase else None}

    @property
    def steps_per_group(self) -> int:
        """Optimisation steps each group of images goes through (every phase)."""
        return self.schedule.total_steps

    @property
    def progress(self) -> Progress:
        """The group's images, step and phase, for callbacks."""
        phase, start = self.phase, 0
        if phase is not None:
            start = sum(p.steps for p in self.schedule.phases[: self.schedule.phases.index(phase)])
        ended = self.schedule.ended_at(self.group_step)
        return Progress(list(self.group_stems), self.group_step, self.steps_per_group,
                        phase.name if phase else None, self.group_step - start, phase.steps if phase else 0,
                        ended.name if ended else None)

    # ---- one step ----------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """Render, the per-image loss, backward through the images still fitting, and the optimiser's step."""
        per_image, terms = self.per_image_loss(self.render())
        active = self.backward_active(per_image)
        self.optimizers().step()
        self.group_step += 1
        self.log_step += 1
        self._log_losses(per_image, terms, active)
        return per_image.detach()

    def backward_active(self, per_image: Tensor) -> Tensor:
        """Backward through the images still fitting; returns their mask ``[B]``.

        A newly non-finite loss fails its image at this step. A failed image's gradient can hold
        NaN; ``where`` (not a product) removes it, so neither the optimiser nor a mixed-precision
        gradient scaler ever sees it.
        """
        newly_bad = ~torch.isfinite(per_image.detach()) & (self.fail_step < 0)
        self.fail_step = torch.where(newly_bad, self.group_step, self.fail_step)
        active = self.fail_step < 0
        self.optimizers().zero_grad(set_to_none=True)
        self.manual_backward(torch.where(active, per_image, 0).sum())
        for p in self.group_parameters().values():
            if p.grad is not None:
                p.grad.copy_(torch.where(active.view(-1, *[1] * (p.grad.ndim - 1)), p.grad, 0))
        return active

    def _log_losses(self, per_image: Tensor, terms: dict[str, Tensor], active: Tensor) -> None:
        """The mean loss (progress bar) and, every ``trainer.log_every_n_steps``, it and its terms to the logger.

        Over the images still fitting, at ``log_step``, which continues a previous run's steps.
        """
        count = active.sum().clamp_min(1)
        loss = torch.where(active, per_image.detach(), 0).sum() / count
        self.log("loss", loss, prog_bar=True, logger=False, batch_size=len(per_image))
        if self.logger is None or self.log_step % max(1, self.trainer.log_every_n_steps):
            return
        values = {f"loss/{k}": torch.where(active, v.detach(), 0).sum() / count for k, v in terms.items()}
        self.logger.log_metrics({"loss": loss, **values}, step=self.log_step)

    @torch.no_grad()
    def current_render(self) -> Tensor:
        """``render()`` after the last step, in fp32, computed once per step."""
        if self._render_cache is None or self._render_cache[0] != self.group_step:
            with torch.autocast(self.device.type, enabled=False):
                self._render_cache = (self.group_step, self.render().float())
        return self._render_cache[1]

    # ---- what methods share -------------------------------------------------------------------

    def check_targets(self, batch: Batch, resolution: int | None = None, what: str = "targets") -> None:
        """Refuse ``what`` (the batch's images) of another size than ``resolution`` (default: the generator's)."""
        size, res = tuple(batch["image"].shape[-2:]), self.generator.resolution
        want = resolution or res
        if size == (want, want):
            return
        needed = f"the generator renders {res}×{res}" if want == res else f"this recipe needs {want}×{want}"
        hint = "leave data.resolution unset" if want == res else f"set data.resolution to {want} (or leave it unset)"
        raise ValueError(f"{what} are {size[0]}×{size[1]} but {needed}; {hint} to match it")

    def stream(self, stem: str, step: int = 0) -> torch.Generator:
        """A random stream of its own for an image (and a step): it depends on the seed, the image's name and the
        step, never on which images share its group, so results do not depend on the groups."""
        key = self.hparams.seed * 1_000_003 + zlib.crc32(stem.encode()) + 7919 * 1_000_003 * step
        return torch.Generator().manual_seed(key % 2**63)

    def stored_latents(self, stem: str) -> Latents:
        """The code stored for ``stem`` under the recipe's ``latents`` (a folder, run folder or file), checked."""
        return Latents.load(find_latents(Path(self.hparams.latents), stem)).check(self.generator)

    def const_noise(self) -> list[Tensor]:
        """The generator's fixed noise maps, as a result that renders with them records them."""
        return [n.detach().float().cpu() for n in self.generator.synthesis.const_noise()]

    def all_rows(self, latent: Tensor) -> Tensor:
        """A latent of one row per image (W) or of every row (W+), as W+ ``[B, num_ws, w_dim]``."""
        return latent.expand(-1, self.generator.num_ws, -1)

    # ---- results and failures ----------------------------------------------------------------

    def metadata(self, stem: str, **extra: Any) -> dict:
        """What a latents file records to re-render and rerun: the method, generator, its hash, the recipe."""
        recipe = json.dumps(dict(self.hparams), default=lambda o: dataclasses.asdict(o), sort_keys=True)
        return {"stem": stem, "method": self.method_name, **self.provenance, "resolution": self.generator.resolution,
                "recipe": recipe, **extra}

    def fit_result(self, i: int, latents: Latents, copies: Any = None, dtype: str = "float16") -> FitResult:
        """Image ``i``'s result: its latents record and, when the method tuned ``copies`` of the synthesis weights
        (:class:`~embedding.methods.tuned_weights.WeightCopies`), the difference of its copy, stored as ``dtype``."""
        if copies is None:
            return FitResult(latents)
        diff = copies.difference(self.generator.synthesis, i, getattr(torch, dtype))
        return FitResult(latents, diff_record(diff, self.provenance))

    @property
    def failed(self) -> dict[str, str]:
        """Images of the current group that failed, with the reason (phase and step of a divergence)."""
        out = {}
        for i, step in enumerate(self.fail_step.tolist()):
            if step >= 0:
                name = self.schedule.phase_at(step).name
                out[self.group_stems[i]] = f"the loss is not finite in {self.step_word} {name} at step {step}"
        return {**out, **self._write_failed}

    @property
    def failures(self) -> list[tuple[str, str]]:
        """Every image that failed in this run, with the reason."""
        return [*self._past_failures, *self.failed.items()]

    def mark_failed(self, stem: str, reason: str) -> None:
        """Record a failure found outside the optimisation (its results could not be written)."""
        self._write_failed[stem] = reason
