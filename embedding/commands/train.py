"""``embed train``: train networks (``embed train fit --config recipes/train_generator.yaml``).

The recipe's ``model.class_path`` picks what is trained: a StyleGAN2 (the default,
``embedding.training.StyleGAN2Training``) or the Swapping Autoencoder
(``embedding.methods.swapping.training.SwappingAutoencoderTraining``), or an encoder
(``embedding.methods.encoder.training.EncoderTraining``).

Resume a stopped run with ``--ckpt_path last``; checkpoints and sample grids land in
``trainer.default_root_dir``, the exported networks in its ``export/`` folder. Each iteration
takes two optimiser steps (D, then G): ``trainer.max_steps`` and checkpoint names count optimiser
steps, sample grids and exports count iterations.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from lightning import LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks.samples import ExportNetworks, GeneratorSamples
from datamodules.training import TrainingImages
from embedding.checkpoints import CheckpointError
from embedding.commands.recipe_checks import UnknownOption, check_inputs, check_keys, exit_with
from embedding.images import NoUsableImageError

DEFAULT_MODEL = "embedding.training.StyleGAN2Training"


class TrainCLI(LightningCLI):
    """LightningCLI for training with sample grids, exports and resumable checkpoints always on.

    The model is any LightningModule with ``sample_grid(count, seed)`` and ``export(folder, metadata)``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(LightningModule, TrainingImages, subclass_mode_model=True,
                         save_config_kwargs={"overwrite": True},
                         trainer_defaults={"max_epochs": -1, "default_root_dir": "runs/train",
                                           "enable_checkpointing": True}, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``: a GAN here has no validation, test or prediction loop."""
        return {"fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"model": {"class_path": DEFAULT_MODEL}})
        parser.add_lightning_class_args(GeneratorSamples, "samples")
        parser.add_lightning_class_args(ExportNetworks, "export")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.every_n_train_steps": 200,
                             "checkpoint.filename": "{step}"})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, naming an unknown key first; then check the photos and networks named before anything is built."""
        argv = sys.argv[1:] if args is None else args
        listed = isinstance(argv, list | tuple)
        if listed:
            check_keys(parser, argv, "embed train", DEFAULT_MODEL, LightningModule)
        super().parse_arguments(parser, args)
        if listed and self.config.get("subcommand") == "fit":
            check_inputs(self.config["fit"], "no training images in")

    def before_instantiate_classes(self) -> None:
        """Checkpoints go to ``<default_root_dir>/checkpoints``, where ``--ckpt_path last`` finds them."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = f"{config.trainer.default_root_dir}/checkpoints"


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``embed train``; an unknown key exits with 2, missing photos or networks with 1."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    saved = sys.argv
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]  # LightningCLI parses sys.argv
    try:
        TrainCLI()
    except UnknownOption as e:
        exit_with(e)
    except (CheckpointError, FileNotFoundError, NoUsableImageError) as e:
        logging.getLogger("embedding").error("%s", e)
        raise SystemExit(1) from e
    finally:
        sys.argv = saved


if __name__ == "__main__":
    main()
