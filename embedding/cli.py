"""The ``embed`` command: ``embed fit --config recipes/<app>.yaml`` (LightningCLI).

Beside the usual ``model``, ``data`` and ``trainer`` sections, a recipe configures the callbacks
every embedding run has (``phase_schedule``, ``metrics``, ``images``, ``writer``, ``progress``).
The run folder is ``trainer.default_root_dir``; TensorBoard event files and the resolved
``config.yaml`` (a complete recipe that reruns the experiment) land there.
"""

from __future__ import annotations

import logging
import warnings

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks import EmbeddingMetrics, EmbeddingProgressBar, PhaseSchedule, ResultWriter, TensorBoardImages
from datamodules import EmbeddingDataModule

from .module import EmbeddingModule

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
    """LightningCLI with the embedding's callbacks always present and TensorBoard writing into the run folder."""

    def __init__(self, **kwargs) -> None:
        super().__init__(EmbeddingModule, EmbeddingDataModule, trainer_defaults=TRAINER_DEFAULTS,
                         save_config_kwargs={"overwrite": True}, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(PhaseSchedule, "phase_schedule")
        parser.add_lightning_class_args(EmbeddingMetrics, "metrics")
        parser.add_lightning_class_args(TensorBoardImages, "images")
        parser.add_lightning_class_args(ResultWriter, "writer")
        parser.add_lightning_class_args(EmbeddingProgressBar, "progress")

    def before_instantiate_classes(self) -> None:
        """Default logger: TensorBoard events directly in the run folder (no version subfolders).

        ``--trainer.enable_progress_bar false`` keeps its usual meaning: the embedding's own bar
        (always installed) is then silenced instead of clashing with the setting.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.trainer.enable_progress_bar is False:
            config.trainer.enable_progress_bar = True
            config.progress.refresh_rate = 0
        if config.trainer.logger in (None, True):
            config.trainer.logger = Namespace(
                class_path="lightning.pytorch.loggers.TensorBoardLogger",
                init_args=Namespace(save_dir=config.trainer.default_root_dir, name="", version="",
                                    default_hp_metric=False))

    def after_fit(self) -> None:
        """End with a summary of the images that could not be used."""
        failures = getattr(self.datamodule, "failures", [])
        skipped = getattr(self.datamodule, "skipped", [])
        if skipped:
            log.warning("skipped %d image(s) already finished in %s", len(skipped), self.trainer.default_root_dir)
        if failures:
            lines = "\n".join(f"  {path}: {reason}" for path, reason in failures)
            log.error("%d input(s) could not be used:\n%s", len(failures), lines)


def main() -> None:
    """Entry point of the ``embed`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Phases install their own optimisers, and the frozen generator and VGG stay in eval mode.
    warnings.filterwarnings("ignore", message=r".*configure_optimizers.*returned `None`")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    EmbedCLI()


if __name__ == "__main__":
    main()
