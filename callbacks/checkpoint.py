"""Mid-group checkpoints: a killed run restarted with the same command loses at most a few minutes.

SIGTERM (what schedulers send) and SIGINT (Ctrl-C) stop a run between two steps: the group being
fitted is checkpointed first, then ``Interrupted`` ends the fit so the command can print its
summary and exit with 128 + the signal number (143, 130). A fit run inside another program (a
test, a notebook) hands the signal on to that program's own handlers once it has stopped.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from types import FrameType

from lightning import Callback, LightningModule, Trainer

from embedding.fitting.resume import ResumeStore

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """The run was stopped by ``signum`` after checkpointing its group (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"

    def hand_on(self) -> None:
        """Deliver the signal to the handler the process had before the fit (a caller's Ctrl-C still stops it)."""
        signal.raise_signal(self.signum)


class GroupCheckpoint(Callback):
    """Save the group being fitted (parameters, step, optimiser state) every ``every_seconds``, and on a signal.

    The checkpoint lives in ``resume/`` of the run folder and is deleted once the group's results
    are written. A restart with the same recipe continues the group from it; since each image's
    randomness is fixed by the seed and its name, the result equals an uninterrupted run's.
    ``every_n_steps`` saves on a step count instead (or as well).
    """

    def __init__(self, every_seconds: float | None = 120.0, every_n_steps: int | None = None) -> None:
        self.every_seconds, self.every_n_steps = every_seconds, every_n_steps
        self._last = time.monotonic()
        self._signum: int | None = None
        self._previous: dict[int, object] = {}

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Catch SIGTERM and SIGINT from here on (a second SIGINT still interrupts at once)."""
        self._signum = None

        def note(signum: int, frame: FrameType | None) -> None:
            if self._signum == signal.SIGINT and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._signum = signum
            launcher = trainer.strategy.launcher
            if launcher is not None:  # the other processes of the run stop too
                launcher.kill(signum)

        self._previous = {s: signal.signal(s, note) for s in SIGNALS}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore_signals()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore_signals()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: dict, batch_idx: int) -> None:
        """A signal received during the last step: checkpoint the unfinished group and stop."""
        if self._signum is None:
            return
        progress = pl_module.progress
        if 0 < progress.step < progress.total:
            path = self._save(trainer, pl_module)
            log.warning("%s: checkpoint of %s at step %d in %s", Interrupted(self._signum),
                        ", ".join(progress.stems), progress.step, path)
        raise Interrupted(self._signum)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                           batch_idx: int) -> None:
        progress = pl_module.progress
        if progress.finished:
            ResumeStore(trainer.default_root_dir).delete(progress.stems)
            self._last = time.monotonic()
        elif self._due(progress.step):
            self._save(trainer, pl_module)

    def _save(self, trainer: Trainer, pl_module: LightningModule) -> Path:
        path = ResumeStore(trainer.default_root_dir).write(pl_module.group_state())
        self._last = time.monotonic()
        return path

    def _due(self, step: int) -> bool:
        by_steps = self.every_n_steps is not None and step % self.every_n_steps == 0
        by_time = self.every_seconds is not None and time.monotonic() - self._last >= self.every_seconds
        return by_steps or by_time

    def _restore_signals(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
