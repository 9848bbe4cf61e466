"""Mid-group checkpoints: a killed run restarted with the same command loses at most a few minutes."""

from __future__ import annotations

import time

import torch
from lightning import Callback, LightningModule, Trainer

from embedding.run_folder import RunFolder, atomic_write


class GroupCheckpoint(Callback):
    """Save the group being fitted (parameters, step, optimiser state) every ``every_seconds``.

    The checkpoint lives in ``resume/`` of the run folder and is deleted once the group's results
    are written. A restart with the same recipe continues the group from it; since each image's
    randomness is fixed by the seed and its name, the result equals an uninterrupted run's.
    ``every_n_steps`` saves on a step count instead (or as well).
    """

    def __init__(self, every_seconds: float | None = 120.0, every_n_steps: int | None = None) -> None:
        self.every_seconds, self.every_n_steps = every_seconds, every_n_steps
        self._last = time.monotonic()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                           batch_idx: int) -> None:
        folder = RunFolder(trainer.default_root_dir)
        path = folder.resume_path(pl_module.group_stems)
        if pl_module.group_step >= pl_module.steps_per_group:
            path.unlink(missing_ok=True)
            self._last = time.monotonic()
        elif self._due(pl_module.group_step):
            state = pl_module.group_state()
            atomic_write(path, lambda f: torch.save(state, f))
            self._last = time.monotonic()

    def _due(self, step: int) -> bool:
        by_steps = self.every_n_steps is not None and step % self.every_n_steps == 0
        by_time = self.every_seconds is not None and time.monotonic() - self._last >= self.every_seconds
        return by_steps or by_time
