"""The fit's progress: which images, phase and step the fit is at, as a bar on a terminal and as lines in a log."""

from __future__ import annotations

import sys
from typing import Any

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

from embedding.progress import EVERY_FRACTION, EVERY_S, Progress, stderr_is_terminal


class EmbeddingProgressBar(TQDMProgressBar):
    """Lightning's bar plus the current group's images, phase and step within the phase.

    The bar goes to stderr, with the log. When stderr is not a terminal (a log file, a pipe), the
    bar is replaced by a log line every ``every_fraction`` of the steps or ``every_s`` seconds:
    step/steps, images, phase, loss, time taken and left.
    """

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False,
                 every_s: float = EVERY_S, every_fraction: float = EVERY_FRACTION) -> None:
        super().__init__(refresh_rate, process_position, leave)
        self.every_s = every_s
        self.every_fraction = every_fraction
        self._lines: Progress | None = None

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        progress = pl_module.progress
        if progress.phase is not None:
            metrics["phase"] = f"{progress.phase} {progress.phase_step}/{progress.phase_steps}"
            stems = progress.stems
            metrics["images"] = stems[0] if len(stems) == 1 else f"{stems[0]}..{stems[-1]} ({len(stems)})"
        return metrics

    def init_train_tqdm(self) -> Tqdm:
        """The training bar, on stderr like the log lines (Lightning's is on stdout)."""
        return Tqdm(desc=self.train_description, position=2 * self.process_position, disable=self.is_disabled,
                    leave=True, dynamic_ncols=True, file=sys.stderr, smoothing=0, bar_format=self.BAR_FORMAT)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A bar on a terminal; otherwise log lines, counting every step of the fit."""
        if stderr_is_terminal():
            super().on_train_start(trainer, pl_module)
            return
        self.train_progress_bar = Tqdm(disable=True)  # Lightning's hooks still find a (silent) bar
        total = self.total_train_batches
        self._lines = Progress(int(total) if total != float("inf") else None, "fit", "step", every_s=self.every_s,
                               every_fraction=self.every_fraction, terminal=False, disable=self.is_disabled)

    def on_train_epoch_start(self, trainer: Trainer, *args: Any) -> None:
        """Lightning's bar reset (no log line: a fit is one epoch)."""
        if self._lines is None:
            super().on_train_epoch_start(trainer, *args)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        """The bar moved, or a log line when one is due: step/steps, images, phase, loss, time taken and left."""
        if self._lines is None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        metrics = self.get_metrics(trainer, pl_module)
        first = {key: metrics.pop(key) for key in ("images", "phase") if key in metrics}
        self._lines.set_postfix({**first, **metrics})
        self._lines.update(batch_idx + 1 - self._lines.n)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning's last bar update (the log's last line is on_train_end's)."""
        if self._lines is None:
            super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """The bar closed, or the log's last line: the whole fit's steps and time."""
        if self._lines is None:
            super().on_train_end(trainer, pl_module)
            return
        self._lines.close()
        self._lines = None

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """A stopped fit's last line says where it stopped."""
        if self._lines is not None:
            self._lines.close()
            self._lines = None
