"""The ``embed`` command: ``embed fit --config recipes/<app>.yaml`` (LightningCLI).

``embed edit <op> ...`` edits already embedded images from their latents files (see
:mod:`embedding.edit_cli`); ``embed align ...`` FFHQ-aligns the faces of photos (see
:mod:`embedding.faces.align_cli`).

Beside the usual ``model``, ``data`` and ``trainer`` sections, a recipe configures the callbacks
every embedding run has (``phase_schedule``, ``metrics``, ``images``, ``writer``, ``progress``).
The run folder is ``trainer.default_root_dir``; TensorBoard event files and the resolved
``config.yaml`` (a complete recipe that reruns the experiment) land there.
"""

from __future__ import annotations

import logging
import sys
import warnings

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks import (
    EmbeddingMetrics,
    EmbeddingProgressBar,
    GroupCheckpoint,
    PhaseSchedule,
    ResultWriter,
    TensorBoardImages,
)
from datamodules import EmbeddingDataModule, NoUsableImageError

from .checkpoints import CheckpointError
from .module import EmbeddingModule
from .run_folder import RunFolder

log = logging.getLogger("embedding")

TRAINER_DEFAULTS = {
    "max_epochs": 1,
    "default_root_dir": "runs/embed",
    "enable_checkpointing": False,
    "num_sanity_val_steps": 0,
    "use_distributed_sampler": False,
    "log_every_n_steps": 10,
}


class EmbedCLI(LightningCLI):
    """LightningCLI with the embedding's callbacks always present and TensorBoard writing into the run folder.

    ``module_class`` is the LightningModule it fits (a subclass may set another one, e.g. DGP's).
    """

    module_class: type = EmbeddingModule

    def __init__(self, **kwargs) -> None:
        super().__init__(self.module_class, EmbeddingDataModule, trainer_defaults=TRAINER_DEFAULTS,
                         save_config_kwargs={"overwrite": True}, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(PhaseSchedule, "phase_schedule")
        parser.add_lightning_class_args(EmbeddingMetrics, "metrics")
        parser.add_lightning_class_args(TensorBoardImages, "images")
        parser.add_lightning_class_args(ResultWriter, "writer")
        parser.add_lightning_class_args(GroupCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EmbeddingProgressBar, "progress")

    def before_instantiate_classes(self) -> None:
        """Default logger: TensorBoard events directly in the run folder (no version subfolders).

        ``--trainer.strategy ddp`` runs one process per device, each fitting its own images, with
        no gradient synchronisation (``IndependentDDPStrategy``). ``--trainer.enable_progress_bar
        false`` keeps its usual meaning: the embedding's own bar is silenced instead of clashing.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
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

    def after_fit(self) -> None:
        """End with a summary of every failure; exit non-zero when nothing could be done.

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
        log.info("%s%d image(s) finished, %d skipped as already done, %d failed", rank, len(finished),
                 len(skipped), len(failures))
        if failures:
            lines = "\n".join(f"  {name}: {reason}" for name, reason in failures)
            log.error("%s%d input(s) could not be used:\n%s", rank, len(failures), lines)
            if trainer.is_global_zero and not finished and not skipped and not self._any_finished():
                raise SystemExit(1)

    def _any_finished(self) -> bool:
        """Whether any input of this run has its results in the run folder (written by any process)."""
        folder = RunFolder(self.trainer.default_root_dir)
        return any(folder.is_done(stem) for stem, _ in self.datamodule.dataset.items)

    def _callback_index(self, cls: type) -> int:
        return next(i for i, c in enumerate(self.trainer.callbacks) if isinstance(c, cls))


def main() -> None:
    """Entry point of the ``embed`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if sys.argv[1:2] == ["edit"]:
        from .edit_cli import main as edit_main

        edit_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["convert"]:
        from .checkpoints.convert import main as convert_main

        raise SystemExit(convert_main(sys.argv[2:]))
    if sys.argv[1:2] == ["align"]:
        from .faces.align_cli import main as align_main

        raise SystemExit(align_main(sys.argv[2:]))
    # Phases install their own optimisers, and the frozen generator and VGG stay in eval mode.
    warnings.filterwarnings("ignore", message=r".*configure_optimizers.*returned `None`")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    try:
        EmbedCLI()
    except (CheckpointError, NoUsableImageError, OSError) as e:
        log.error("%s", e)
        raise SystemExit(1) from e


if __name__ == "__main__":
    main()
