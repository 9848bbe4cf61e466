"""What every per-image fitting module shares: groups walked through a schedule, and per-image failures.

``EmbeddingModule`` and ``DGPModule`` both fit a group of images at a time, each image with its
own parameters, through the phases (or stages) of a :class:`~embedding.phases.Schedule`. An image
whose loss stops being finite fails alone: it is recorded on the device (no sync per step), its
gradients are removed, and the others carry on.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .checkpoints import load_generator
from .latents import generator_file, sha256


class GroupFitting:
    """Mixin for a manual-optimisation LightningModule with ``schedule``, ``group_stems`` and ``group_step``."""

    step_word = "phase"  # what the schedule's entries are called in failure reasons

    def _use_generator(self, source: str) -> None:
        """Load the pretrained generator and remember where it came from (latents files record both)."""
        self.generator_source = source
        self.generator = load_generator(source)
        self.generator_sha256 = sha256(generator_file(source))

    def _init_groups(self) -> None:
        """No group yet and no failure (call in ``__init__``)."""
        self.group_stems: list[str] = []
        self.group_step = 0
        self.fail_step = torch.zeros(0, dtype=torch.long)
        self._write_failed: dict[str, str] = {}
        self._past_failures: list[tuple[str, str]] = []

    def _begin_group(self, stems: list[str]) -> None:
        """Make ``stems`` the current group, at step 0 with no failure; the last group's failures are kept."""
        self._past_failures.extend(self.failed.items())
        self.group_stems = list(stems)
        self.group_step = 0
        self.fail_step = torch.full((len(self.group_stems),), -1, dtype=torch.long, device=self.device)
        self._write_failed = {}

    def _progress(self) -> dict:
        """The group's place in its schedule, for a mid-group checkpoint: stems, step, phase, optimiser, failures."""
        return {"stems": list(self.group_stems), "group_step": self.group_step,
                "phase": self.phase.name if self.phase else None, "fail_step": self.fail_step.cpu(),
                "write_failed": dict(self._write_failed),
                "optimizer": self.trainer.optimizers[0].state_dict() if self.phase else None}

    def _restore_progress(self, state: dict) -> None:
        """Continue the group's step count and failures from a mid-group checkpoint."""
        self.group_step = state["group_step"]
        self.fail_step.copy_(state["fail_step"])
        self._write_failed = dict(state["write_failed"])

    @property
    def steps_per_group(self) -> int:
        """Optimisation steps each group of images goes through (every phase)."""
        return self.schedule.total_steps

    def configure_optimizers(self) -> None:
        """Each phase gets a fresh optimiser from the ``PhaseSchedule`` callback."""
        return None

    def is_new_group(self, batch: dict) -> bool:
        """Whether ``batch`` starts a new group (other images, or the current group is finished)."""
        return list(batch["stem"]) != self.group_stems or self.group_step >= self.steps_per_group

    def backward_active(self, per_image: torch.Tensor, params: Iterable[torch.Tensor]) -> torch.Tensor:
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
        for p in params:
            if p.grad is not None:
                p.grad.copy_(torch.where(active.view(-1, *[1] * (p.grad.ndim - 1)), p.grad, 0))
        return active

    def finish_step(self, per_image: torch.Tensor, terms: dict[str, torch.Tensor], active: torch.Tensor) -> None:
        """Step the optimiser, count the step, log the mean loss and terms over the images still fitting."""
        self.optimizers().step()
        self.group_step += 1
        count = active.sum().clamp_min(1)
        self.log("loss", torch.where(active, per_image.detach(), 0).sum() / count, prog_bar=True,
                 batch_size=len(per_image))
        self.log_dict({f"loss/{k}": torch.where(active, v.detach(), 0).sum() / count for k, v in terms.items()},
                      batch_size=len(per_image))

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
