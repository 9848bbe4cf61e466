"""A progress bar that shows which images, phase and step the fit is at."""

from __future__ import annotations

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar


class EmbeddingProgressBar(TQDMProgressBar):
    """Lightning's bar plus the current group's images, phase and step within the phase."""

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        progress = pl_module.progress
        if progress.phase is not None:
            metrics["phase"] = f"{progress.phase} {progress.phase_step}/{progress.phase_steps}"
            stems = progress.stems
            metrics["images"] = stems[0] if len(stems) == 1 else f"{stems[0]}..{stems[-1]} ({len(stems)})"
        return metrics
