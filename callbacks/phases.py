"""Walks each group of images through the recipe's phases, each phase with a fresh optimiser."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer


class PhaseSchedule(Callback):
    """Before each step: start a new group when the images change, switch phase when one ends.

    Switching a phase sets which variables move (W+ or noise maps, through the variable masks)
    and installs a fresh optimiser built from the phase's settings.
    """

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: dict, batch_idx: int) -> None:
        if pl_module.is_new_group(batch):
            pl_module.start_group(batch)
        phase = pl_module.schedule.phase_at(pl_module.group_step)
        if phase is not pl_module.phase:
            params = pl_module.enter_phase(phase, batch)
            trainer.strategy.optimizers = [phase.make_optimizer(params)]
