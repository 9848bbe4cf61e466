"""The ``embed`` command: one entry point, one module per subcommand, each imported only when run.

    embed fit --config recipes/reconstruct.yaml     # fit a recipe, any method (commands/fit.py)
    embed fit --config recipes/dgp_colorize.yaml    # DGP: the recipe names model.class_path
    embed edit morph A.pt B.pt                      # edit fitted codes (commands/edit.py)
    embed train fit --config recipes/train_generator.yaml

A subcommand is a module of this package with ``main(argv)``, so a new one is a line in
``COMMANDS``. ``embed --help`` imports neither torch nor Lightning.

Every command logs through one handler in one format (``LEVEL logger: message``), Lightning's
lines included; warnings become log lines of the module that raised them, without a source line;
Lightning's advertisements, model summary and other libraries' deprecation notices are left out
(``python -W`` or ``PYTHONWARNINGS`` bring the warnings back).
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings
from typing import Any, TextIO

COMMANDS: dict[str, str] = {
    "fit": "fit photos with the method a recipe names (W+ and noise embedding, PTI, DGP), "
           "e.g. --config recipes/reconstruct.yaml",
    "encode": "embed photos with an encoder in one forward pass, into latents files like fit's",
    "edit": "edit fitted codes: attribute transfer, activations, morphing, jittering, style mixing, arithmetic, "
            "directions, constrained edits",
    "swap": "Swapping Autoencoder: embed photos in one pass, swap structure and texture, texture arithmetic",
    "train": "train networks on a folder of photos: a StyleGAN2, an encoder or a Swapping Autoencoder "
             "(the recipe's model.class_path)",
    "convert": "rewrite a checkpoint (NVIDIA, rosinality, project) in the project's or rosinality's format",
    "align": "align face photos the way the generator's training data was",
    "paste": "paste fitted or edited faces back into the photos they were aligned from (embed align's records)",
    "fetch": "get a generator that does not ship with the project (mobilestylegan-ffhq: FFHQ 1024²) into the user "
             "cache, once",
}


def usage() -> str:
    """The text of ``embed --help``."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, summary in COMMANDS.items()]
    return "\n".join([
        "usage: embed <command> [options]    (embed <command> --help for its options)",
        "",
        "Embed photos into a pretrained StyleGAN2 and edit them there.",
        "",
        "commands:",
        *lines,
        "",
        "Quick start: embed fit --config recipes/reconstruct.yaml --model.steps \"{WI: 200, Mkn: 100}\"",
    ])


LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric")
# Lightning's lines that say nothing about this run: advertisements, accelerators the machine lacks, the usual end.
NOISE = re.compile(r"💡|litlogger|litmodels|^(TPU|HPU) available: False|"
                   r"^`Trainer.fit` stopped: `max_epochs=\d+` reached")
SUMMARY_LOGGERS = ("lightning.pytorch.callbacks.model_summary", "lightning.pytorch.callbacks.rich_model_summary")
OWN_PACKAGES = r"(?!embedding|callbacks|datamodules)"  # a module name outside the project


class QuietLightning(logging.Filter):
    """Drops Lightning's advertisements, its model summary (frozen networks: its counts mislead) and idle lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name in SUMMARY_LOGGERS or NOISE.search(record.getMessage()))


def configure_logging() -> bool:
    """One stderr handler on the root logger, in one format, unless the program running the command has its own.

    Returns whether it did (then the command's output is this module's to shape).
    """
    root = logging.getLogger()
    if root.handlers:
        return False
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(QuietLightning())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return True


def route_lightning_to_root() -> None:
    """Lightning gives its loggers a console handler of their own (every line twice): take it off, keep the root's."""
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                file: TextIO | None = None, line: str | None = None) -> None:
    """Show a warning as one log line of the module that raised it (``showwarning``'s signature)."""
    module = next((name for name, m in list(sys.modules.items()) if getattr(m, "__file__", None) == filename),
                  "py.warnings")
    logging.getLogger(module).warning("%s", message)


def quiet_warnings() -> None:
    """Warnings as log lines; other libraries' deprecation notices and Lightning's advice for tiny runs left out.

    Call inside ``warnings.catch_warnings()``. ``python -W ...`` or ``PYTHONWARNINGS`` keep every warning.
    """
    warnings.showwarning = log_warning
    if sys.warnoptions:
        return
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=OWN_PACKAGES)
    warnings.filterwarnings("ignore", message="No seed found")  # the next line, "Seed set to 0", says it
    warnings.filterwarnings("ignore", message=r"The number of training batches .* logging interval")


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``embed`` console script: run ``embed <command> <args>``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return None if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"embed: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    own_output = configure_logging()
    saved, sys.argv = sys.argv, [f"embed {name}", *rest]  # what the subcommand's own parser reports as its usage
    try:
        with warnings.catch_warnings():
            command = importlib.import_module(f"{__name__}.{name}")
            if own_output:
                route_lightning_to_root()  # Lightning, when the command uses it, is imported by now
            quiet_warnings()
            return command.main(rest)
    finally:
        sys.argv = saved
