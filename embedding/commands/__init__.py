"""The ``embed`` command: one entry point, one module per subcommand, each imported only when run.

    embed fit --config recipes/reconstruct.yaml     # fit a recipe, any method (commands/fit.py)
    embed fit --config recipes/dgp_colorize.yaml    # DGP: the recipe names model.class_path
    embed edit morph A.pt B.pt                      # edit fitted codes (commands/edit.py)
    embed train fit --config recipes/train_generator.yaml

A subcommand is a module of this package with ``main(argv)``, so a new one is a line in
``COMMANDS``. ``embed --help`` imports neither torch nor Lightning.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    saved, sys.argv = sys.argv, [f"embed {name}", *rest]  # what the subcommand's own parser reports as its usage
    try:
        return importlib.import_module(f"{__name__}.{name}").main(rest)
    finally:
        sys.argv = saved
