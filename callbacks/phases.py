"""Walks each group of images through the recipe's phases, each phase with a fresh optimiser."""

from __future__ import annotations

import logging

from lightning import Callback, LightningModule, Trainer

from embedding.run_folder import RunFolder

log = logging.getLogger(__name__)


class PhaseSchedule(Callback):
    """Before each step: start a new group when the images change, switch phase when one ends.

    A new group continues from its mid-group checkpoint in the run folder when there is one.
    Switching a phase sets which variables move (W+ or noise maps, through the variable masks)
    and installs a fresh optimiser built from the phase's settings (or the checkpoint's state).
    """

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: dict, batch_idx: int) -> None:
        if pl_module.is_new_group(batch):
            stems = list(batch["stem"])
            folder = RunFolder(trainer.default_root_dir)
            pl_module.start_group(batch, folder.read_resume(stems))
            if pl_module.resume_state is not None:
                log.info("resuming %s at step %d of %d from %s", ", ".join(stems), pl_module.group_step,
                         pl_module.steps_per_group, folder.resume_path(stems))
        phase = pl_module.schedule.phase_at(pl_module.group_step)
        if phase is not pl_module.phase:
            params = pl_module.enter_phase(phase, batch)
            optimizer = phase.make_optimizer(params)
            resume = pl_module.resume_state
            if resume is not None and resume["phase"] == phase.name and resume["optimizer"] is not None:
                optimizer.load_state_dict(resume["optimizer"])
            pl_module.resume_state = None
            trainer.strategy.optimizers = [optimizer]
