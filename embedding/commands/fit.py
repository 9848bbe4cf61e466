"""``embed fit --config recipes/<app>.yaml``: fit a recipe (LightningCLI).

The recipe's ``model.class_path`` picks the fitting method, any
:class:`~embedding.fitting.method.FittingMethod` (default: ``EmbeddingModule``, the W+ and noise
embedding; DGP recipes name ``embedding.methods.dgp.DGPModule``). Beside the usual ``model``, ``data``
and ``trainer`` sections, a recipe configures the callbacks every fitting run has
(``metrics``, ``images``, ``writer``, ``checkpoint``, ``progress``).
The run folder is ``trainer.default_root_dir``; TensorBoard event files and the resolved
``config.yaml`` (a complete recipe that reruns the experiment) land there.

A run holds its folder's lock (``run.lock``) and checks the folder's recipe (``recipe.json``)
before it writes anything, once for the whole job (:mod:`embedding.fitting.run_guard`). SIGTERM and
SIGINT end it between two steps with a checkpoint, the summary and exit code 143 or 130.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser, DefaultHelpFormatter, Namespace
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from callbacks import EmbeddingMetrics, EmbeddingProgressBar, GroupCheckpoint, ResultWriter, TensorBoardImages
from callbacks.checkpoint import Interrupted
from datamodules import EmbeddingDataModule
from embedding.checkpoints import DEFAULT_NAME, GENERATOR_ONLY, CheckpointError
from embedding.commands.recipe_checks import (
    UnknownOption,
    check_inputs,
    check_keys,
    exit_with,
    from_config_files,
    given_on_command_line,
)
from embedding.fitting.distributed import IndependentDDPStrategy, expected_processes, is_first_process
from embedding.fitting.method import FittingMethod
from embedding.fitting.run_folder import RunFolder
from embedding.fitting.run_guard import RunFolderError, RunGuard, recipe_settings
from embedding.images import NoUsableImageError
from embedding.latents import Latents
from embedding.metrics import read_metrics

log = logging.getLogger("embedding")
DEFAULT_METHOD = "embedding.methods.image2stylegan.EmbeddingModule"

TRAINER_DEFAULTS = {
    "max_epochs": 1,
    "default_root_dir": "runs/embed",
    "enable_checkpointing": False,
    "num_sanity_val_steps": 0,
    "use_distributed_sampler": False,
    "log_every_n_steps": 10,
}


# The trainer options ``embed fit --help`` shows; ``--help-all`` shows every one of Lightning's.
TRAINER_OPTIONS = frozenset(f"trainer.{name}" for name in (
    "default_root_dir", "accelerator", "devices", "num_nodes", "strategy", "precision", "enable_progress_bar",
    "log_every_n_steps"))
DESCRIPTION = ("Fit photos with the method a recipe names (model.class_path); results, TensorBoard events and the "
               "resolved recipe go to the run folder, trainer.default_root_dir.")
HIDDEN = frozenset({"ckpt_path", "weights_only"})  # Lightning's own resume: the run folder resumes instead


class RecipeHelp(DefaultHelpFormatter):
    """``embed fit --help``: the recipe's sections and the run folder, not Lightning's every trainer flag."""

    def add_usage(self, usage, actions, groups, prefix=None) -> None:
        super().add_usage("embed fit --config RECIPE [--section.key VALUE ...] (--help-all: every option)",
                          actions, groups, prefix)

    def start_section(self, heading) -> None:
        if heading and heading.startswith("Customize every aspect of training"):
            heading = "The run folder, devices and precision (trainer; --help-all for every trainer option)"
        super().start_section(heading)

    def add_argument(self, action) -> None:
        dest = action.dest
        if dest in HIDDEN or (dest.startswith("trainer.") and dest not in TRAINER_OPTIONS):
            return
        super().add_argument(action)


class NothingFitted(RuntimeError):
    """A run that finished no image and found none finished: every input failed (each named in the log)."""


class EmbedCLI(LightningCLI):
    """LightningCLI with the fitting callbacks always present and TensorBoard writing into the run folder.

    The model is any ``FittingMethod`` named by ``model.class_path``; ``default_method`` is taken
    when the recipe names none. A signal stops the fit with a checkpoint and the summary; then the
    command (``as_command``) exits with 128 + its number, or, inside another program, the signal
    goes on to the handler that program had.
    """

    def __init__(self, default_method: str = DEFAULT_METHOD, as_command: bool = False, **kwargs) -> None:
        self._guard: RunGuard | None = None
        self.default_method = default_method
        self.as_command = as_command
        try:
            super().__init__(FittingMethod, EmbeddingDataModule, subclass_mode_model=True,
                             trainer_defaults=TRAINER_DEFAULTS, save_config_kwargs={"overwrite": True},
                             auto_configure_optimizers=False, **kwargs)
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

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, naming an unknown key first; then check the inputs and name the run folder before anything is built.

        A missing photo or generator is reported in a second, not after the networks and trainer are set up.
        """
        argv = sys.argv[1:] if args is None else args
        listed = isinstance(argv, list | tuple)
        if listed:
            check_keys(parser, argv, "embed fit", self.default_method, FittingMethod)
        super().parse_arguments(parser, args)
        if listed and self.config.get("subcommand") == "fit":
            config = self.config["fit"]
            check_inputs(config, "nothing to fit in")
            name_run_folder(config, argv)

    def before_instantiate_classes(self) -> None:
        """Default logger: TensorBoard events directly in the run folder (no version subfolders).

        The run folder's guard is made from the settings the results depend on (taken in ``before_fit``).
        ``--trainer.strategy ddp`` runs one process per device, each fitting its own images, with
        no gradient synchronisation (``IndependentDDPStrategy``); so does Lightning's ``auto`` when
        the job has several processes (devices, nodes, or a launcher's ``WORLD_SIZE``), since plain
        DDP refuses a module whose parameters it cannot synchronise. ``--trainer.enable_progress_bar
        false`` keeps its usual meaning: the embedding's own bar is silenced instead of clashing.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        model = config.model.as_dict()
        settings = recipe_settings(model["class_path"], model.get("init_args", {}), config.data.as_dict(),
                                   config.trainer.precision)
        self._guard = RunGuard(Path(config.trainer.default_root_dir), settings)
        trainer = config.trainer
        if trainer.strategy in (None, "auto"):
            processes = expected_processes(trainer.accelerator, trainer.devices, trainer.num_nodes)
            if processes > 1:
                log.info("%d processes and no --trainer.strategy: each fits its own images (ddp)", processes)
                trainer.strategy = "ddp"
        if config.trainer.strategy == "ddp":
            config.trainer.strategy = Namespace(class_path="embedding.fitting.distributed.IndependentDDPStrategy")
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
            if self.as_command:
                raise SystemExit(stop.exit_code) from None
            stop.hand_on()

    def after_fit(self) -> None:
        """End with a summary of every failure; ``NothingFitted`` when nothing could be done."""
        if self.summarise():
            raise NothingFitted(f"nothing could be fitted into {Path(self.trainer.default_root_dir).resolve()}; "
                                "the log names each input and what went wrong")

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


def name_run_folder(config: Namespace, argv: Sequence[str]) -> None:
    """Give the run folder the generator's name when the generator is not the one the folder was named for.

    A folder set on the command line is kept. Otherwise the recipe's folder (``runs/reconstruct``)
    belongs to the recipe's generator, and the built-in ``runs/embed`` to ``default``: another
    generator (``--model.generator mobilestylegan-ffhq``) gets ``runs/reconstruct-mobilestylegan-ffhq``
    (a file: its stem), so documented commands do not collide over one folder.
    """
    generator = (config.model.get("init_args") or {}).get("generator")
    if not isinstance(generator, str) or given_on_command_line(argv, "trainer.default_root_dir"):
        return
    reference = DEFAULT_NAME
    if from_config_files(argv, "trainer.default_root_dir") is not None:
        reference = from_config_files(argv, "model.init_args.generator", "model.generator") or DEFAULT_NAME
    if generator == str(reference):
        return
    name = generator if generator in (DEFAULT_NAME, *GENERATOR_ONLY) else Path(generator).expanduser().stem
    folder = f"{Path(config.trainer.default_root_dir)}-{name}"
    log.info("run folder %s: %s named for the generator %s (--trainer.default_root_dir picks another)",
             folder, config.trainer.default_root_dir, generator)
    config.trainer.default_root_dir = folder


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


def method_options(argv: list[str], default_method: str = DEFAULT_METHOD) -> str:
    """The help of the options of the fitting method the recipe (``--config``) names, or of ``default_method``."""
    import yaml

    method = default_method
    for flag in ("--config", "-c"):
        if flag in argv[:-1]:
            with open(argv[argv.index(flag) + 1]) as f:
                model = (yaml.safe_load(f) or {}).get("model")
            if isinstance(model, dict):
                method = model.get("class_path", method)
    module, name = method.rsplit(".", 1)
    parser = ArgumentParser(prog="embed fit", formatter_class=DefaultHelpFormatter)
    parser.add_class_arguments(getattr(importlib.import_module(module), name), "model", sub_configs=True)
    sections = parser.format_help().split("\n\n")[1:]  # without this parser's usage and its own -h
    options = "\n\n".join(section for section in sections if not section.startswith("options:"))
    return f"The method ({method}; --model.help CLASS_PATH for another) {options[0].lower()}{options[1:]}"


def print_help(argv: list[str], default_method: str = DEFAULT_METHOD) -> None:
    """``embed fit --help``: the method's own options first, then the recipe's other sections and the run folder."""
    text = io.StringIO()
    saved, sys.argv = sys.argv, ["embed", "fit", *argv]
    try:
        with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
            EmbedCLI(default_method, parser_kwargs={"formatter_class": RecipeHelp, "fit": {"description": DESCRIPTION}})
    finally:
        sys.argv = saved
    head, rest = text.getvalue().split("\n\n", 2)[:2], text.getvalue().split("\n\n", 2)[2]
    print("\n\n".join([*head, method_options(argv, default_method).rstrip(), rest]).rstrip())


def main(argv: list[str], default_method: str = DEFAULT_METHOD) -> None:
    """``embed fit <argv>``; errors about inputs, settings, checkpoints or the run folder end with a message, exit 1.

    ``--help`` lists the recipe's sections and the run folder; ``--help-all`` every option Lightning has too.
    """
    # Phases install their own optimisers, and the frozen generator and VGG stay in eval mode.
    warnings.filterwarnings("ignore", message=r".*configure_optimizers.*returned `None`")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    if "--help-all" in argv:
        argv = ["--help" if a == "--help-all" else a for a in argv]
    elif "--help" in argv or "-h" in argv:
        print_help(argv, default_method)
        return
    saved, sys.argv = sys.argv, ["embed", "fit", *argv]  # LightningCLI parses sys.argv, and reports its usage from it
    try:
        EmbedCLI(default_method, as_command=True)
    except UnknownOption as e:
        exit_with(e)
    except (CheckpointError, NoUsableImageError, NothingFitted, RunFolderError, OSError, ValueError) as e:
        log.error("%s", e)
        raise SystemExit(1) from e
    finally:
        sys.argv = saved


@dataclass
class Run:
    """The outcome of :func:`fit`: the run folder and what became of each input."""

    folder: RunFolder
    finished: list[str]
    skipped: list[str]
    failures: list[tuple[str, str]]

    def latents(self, stem: str) -> Latents:
        """The latents record of a finished image (``latents/<stem>.pt``)."""
        return Latents.load(self.folder.latents_path(stem))

    def metrics(self) -> list[dict[str, str | int | float | None]]:
        """The rows of ``metrics.csv`` as numbers: ``step`` an int, the measures floats, an empty cell None.

        ``image`` and ``phase`` stay strings. None, not nan, marks a measure not taken (a masked
        variant without a mask, identity not asked for), so a mean over it fails instead of turning nan.
        """
        return [{key: _number(key, value) for key, value in row.items()} for row in read_metrics(self.folder)]


def _number(column: str, value: str | None) -> str | int | float | None:
    """One ``metrics.csv`` cell as a number (``image`` and ``phase`` as they are)."""
    if column in ("image", "phase"):
        return value
    if value is None or value == "":
        return None
    return int(float(value)) if column == "step" else float(value)


def fit(recipe: str | os.PathLike | type, images: str | os.PathLike | list | None = None,
        out: str | os.PathLike | None = None, /, arguments: Sequence[str] = (), **sections: dict[str, Any]) -> Run:
    """Fit ``images`` into the run folder ``out`` as ``embed fit`` does, and return what became of them.

    ``recipe`` is a recipe file, or a fitting method (a :class:`~embedding.fitting.FittingMethod`
    subclass or its class path) with its defaults; ``images`` and ``out`` default to the recipe's
    own, ``out`` with the generator's name added when ``model`` names another generator (positional:
    ``images=`` names the TensorBoard images section). ``sections`` override the recipe's
    sections, ``model={"steps": {"WI": 200, "Mkn": 100}}``,
    ``data={"batch_size": 8}``, ``trainer=...``, ``metrics=...``, ``checkpoint=...``; ``arguments``
    are further options as ``embed fit`` takes them (``["--model.seed", "3"]``), applied last. Raises
    ``NothingFitted`` when every input failed.
    """
    if isinstance(recipe, type):
        args = ["--model.class_path", f"{recipe.__module__}.{recipe.__qualname__}"]
    elif Path(recipe).suffix.lower() in (".yaml", ".yml", ".json") or Path(recipe).exists():
        args = ["--config", os.fspath(recipe)]
    else:
        args = ["--model.class_path", str(recipe)]
    if images is not None:
        listed = [os.fspath(p) for p in images] if isinstance(images, list | tuple) else images
        args += ["--data.images", _argument(listed)]
    if out is not None:
        args += ["--trainer.default_root_dir", os.fspath(out)]
    for section, values in sections.items():
        for key, value in values.items():
            args += [f"--{section}.{key}", _argument(value)]
    saved, sys.argv = sys.argv, sys.argv[:1]  # the calling program's own arguments are not for this run
    try:
        cli = EmbedCLI(args=["fit", *args, *arguments])
    finally:
        sys.argv = saved
    finished = cli.trainer.callbacks[cli._callback_index(ResultWriter)].finished
    return Run(RunFolder(cli.trainer.default_root_dir), list(finished), list(cli.datamodule.skipped),
               [*cli.datamodule.failures, *cli.model.failures])


def _argument(value: Any) -> str:
    """A value as the command line gives it: strings and paths as they are, anything else as JSON."""
    return os.fspath(value) if isinstance(value, str | os.PathLike) else json.dumps(value)
