"""``embed fit --config recipes/<app>.yaml``: fit a recipe (LightningCLI).

The recipe's ``model.class_path`` picks the fitting method, any
:class:`~embedding.fitting.FittingMethod` (default: ``EmbeddingModule``, the W+ and noise
embedding; DGP recipes name ``embedding.dgp.DGPModule``). Beside the usual ``model``, ``data``
and ``trainer`` sections, a recipe configures the callbacks every fitting run has
(``metrics``, ``images``, ``writer``, ``checkpoint``, ``progress``).
The run folder is ``trainer.default_root_dir``; TensorBoard event files and the resolved
``config.yaml`` (a complete recipe that reruns the experiment) land there.

A run holds its folder's lock (``run.lock``) and checks the folder's recipe (``recipe.json``)
before it writes anything, once for the whole job (:mod:`embedding.run_guard`). SIGTERM and
SIGINT end it between two steps with a checkpoint, the summary and exit code 143 or 130.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks import EmbeddingMetrics, EmbeddingProgressBar, GroupCheckpoint, ResultWriter, TensorBoardImages
from callbacks.checkpoint import Interrupted
from datamodules import EmbeddingDataModule, NoUsableImageError

from .checkpoints import CheckpointError
from .distributed import IndependentDDPStrategy, is_first_process
from .fitting import FittingMethod
from .run_folder import RunFolder
from .run_guard import RunFolderError, RunGuard, recipe_settings

log = logging.getLogger("embedding")
DEFAULT_METHOD = "embedding.module.EmbeddingModule"

TRAINER_DEFAULTS = {
    "max_epochs": 1,
    "default_root_dir": "runs/embed",
    "enable_checkpointing": False,
    "num_sanity_val_steps": 0,
    "use_distributed_sampler": False,
    "log_every_n_steps": 10,
}


class EmbedCLI(LightningCLI):
    """LightningCLI with the fitting callbacks always present and TensorBoard writing into the run folder.

    The model is any ``FittingMethod`` named by ``model.class_path``; ``default_method`` is taken
    when the recipe names none.
    """

    def __init__(self, default_method: str = DEFAULT_METHOD, **kwargs) -> None:
        self._guard: RunGuard | None = None
        self.default_method = default_method
        try:
            super().__init__(FittingMethod, EmbeddingDataModule, subclass_mode_model=True,
                             trainer_defaults=TRAINER_DEFAULTS, save_config_kwargs={"overwrite": True}, **kwargs)
        finally:
            if self._guard is not None:
                self._guard.release()

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``: validating, testing and predicting mean nothing for an embedding."""
        return {"fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"model": {"class_path": self.default_method}})
        parser.add_lightning_class_args(EmbeddingMetrics, "metrics")
        parser.add_lightning_class_args(TensorBoardImages, "images")
        parser.add_lightning_class_args(ResultWriter, "writer")
        parser.add_lightning_class_args(GroupCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EmbeddingProgressBar, "progress")

    def before_instantiate_classes(self) -> None:
        """Default logger: TensorBoard events directly in the run folder (no version subfolders).

        The run folder's guard is made from the settings the results depend on (taken in ``before_fit``).
        ``--trainer.strategy ddp`` runs one process per device, each fitting its own images, with
        no gradient synchronisation (``IndependentDDPStrategy``). ``--trainer.enable_progress_bar
        false`` keeps its usual meaning: the embedding's own bar is silenced instead of clashing.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        model = config.model.as_dict()
        settings = recipe_settings(model["class_path"], model.get("init_args", {}), config.data.as_dict(),
                                   config.trainer.precision)
        self._guard = RunGuard(Path(config.trainer.default_root_dir), settings)
        if config.trainer.strategy == "ddp":
            config.trainer.strategy = Namespace(class_path="embedding.distributed.IndependentDDPStrategy")
        if config.trainer.enable_progress_bar is False:
            config.trainer.enable_progress_bar = True
            config.progress.refresh_rate = 0
        if config.trainer.logger in (None, True):
            config.trainer.logger = Namespace(
                class_path="lightning.pytorch.loggers.TensorBoardLogger",
                init_args=Namespace(save_dir=config.trainer.default_root_dir, name="", version="",
                                    default_hp_metric=False))

    def instantiate_classes(self) -> None:
        """Build the method, data and trainer; an error of the method's own ``__init__`` is raised as itself.

        The parser wraps it in a report of every class it tried for ``model`` (a subclass, or None).
        """
        try:
            super().instantiate_classes()
        except ValueError as e:
            raise _raised_outside_the_parser(e) from None

    def before_fit(self) -> None:
        """Lock the run folder and check its recipe once the run is built, before anything is written.

        A first try that fails while building its method (a missing generator or discriminator
        file, say) leaves no ``recipe.json`` behind. The processes of a ``ddp`` job do it once
        their group exists: process 0 takes the folder and tells the others
        (``IndependentDDPStrategy``), so a refusal reaches every process on every node. Under
        another strategy, only the launcher's process 0 takes it.
        """
        strategy = self.trainer.strategy
        if isinstance(strategy, IndependentDDPStrategy):
            strategy.run_guard = self._guard
        elif is_first_process():
            self._guard.take()

    def _run_subcommand(self, subcommand: str) -> None:
        """Fit; a signal ends the run with its summary and 128 + the signal number."""
        try:
            super()._run_subcommand(subcommand)
        except Interrupted as stop:
            self.summarise()
            log.warning("%s; rerun the same command to continue", stop)
            raise SystemExit(stop.exit_code) from None

    def after_fit(self) -> None:
        """End with a summary of every failure; exit non-zero when nothing could be done."""
        if self.summarise():
            raise SystemExit(1)

    def summarise(self) -> bool:
        """Log how many images finished, were skipped and failed, naming every failure; True when nothing was done.

        With several processes, each lists the failures of its own images and process 0 the
        unreadable inputs. Only process 0 exits non-zero: Lightning kills every process as soon as
        one ends with an error, which would throw away the work the others are still doing. It
        counts the images any process has finished so far, as found in the run folder.
        """
        trainer = self.trainer
        inputs = self.datamodule.failures if trainer.is_global_zero else []
        failures = [*inputs, *self.model.failures]
        finished = trainer.callbacks[self._callback_index(ResultWriter)].finished
        skipped = self.datamodule.skipped
        rank = f"[rank {trainer.global_rank}] " if trainer.world_size > 1 else ""
        log.info("%s%d image(s) finished, %d skipped as already done, %d failed; results in %s", rank,
                 len(finished), len(skipped), len(failures), Path(trainer.default_root_dir).resolve())
        if failures:
            lines = "\n".join(f"  {name}: {reason}" for name, reason in failures)
            log.error("%s%d input(s) could not be used:\n%s", rank, len(failures), lines)
            return trainer.is_global_zero and not finished and not skipped and not self._any_finished()
        return False

    def _any_finished(self) -> bool:
        """Whether any input of this run has its results in the run folder (written by any process)."""
        folder = RunFolder(self.trainer.default_root_dir)
        return any(folder.is_done(stem) for stem, _ in self.datamodule.dataset.items)

    def _callback_index(self, cls: type) -> int:
        return next(i for i, c in enumerate(self.trainer.callbacks) if isinstance(c, cls))


def _raised_outside_the_parser(error: BaseException) -> BaseException:
    """The first exception in ``error``'s chain of causes raised by code other than jsonargparse's (else ``error``)."""
    cause: BaseException | None = error
    while cause is not None:
        tb = cause.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and not tb.tb_frame.f_globals.get("__name__", "").startswith("jsonargparse"):
            return cause
        cause = cause.__cause__
    return error


def main(argv: list[str], default_method: str = DEFAULT_METHOD) -> None:
    """``embed fit <argv>``; errors about inputs, settings, checkpoints or the run folder end with a message, exit 1."""
    # Phases install their own optimisers, and the frozen generator and VGG stay in eval mode.
    warnings.filterwarnings("ignore", message=r".*configure_optimizers.*returned `None`")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    try:
        sys.argv = ["embed", "fit", *argv]  # LightningCLI parses sys.argv, and reports its usage from it
        EmbedCLI(default_method)
    except (CheckpointError, NoUsableImageError, RunFolderError, OSError, ValueError) as e:
        log.error("%s", e)
        raise SystemExit(1) from e
