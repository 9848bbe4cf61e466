"""The ``embed`` command: one entry point, one line of help per subcommand, each imported only when run.

    embed fit --config recipes/reconstruct.yaml     # fit a recipe, any method (embedding.fit_cli)
    embed fit --config recipes/dgp_colorize.yaml    # DGP: the recipe names model.class_path
    embed edit morph A.pt B.pt                      # edit fitted codes (embedding.edit_cli)
    embed train fit --config recipes/train_generator.yaml

A subcommand is a module with ``main(argv)``; it is listed only when its module exists,
so a new one is a line in ``COMMANDS``. ``embed --help`` imports neither torch nor Lightning.
Aliases kept for one release: ``embed dgp`` and ``embed-dgp`` (now ``embed fit`` and
``embed edit jitter|morph``), ``embed-train`` (``embed train``).
"""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any, NamedTuple


class Command(NamedTuple):
    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "fit": Command("embedding.fit_cli", "fit photos with the method a recipe names (W+ and noise embedding, DGP), "
                                        "e.g. --config recipes/reconstruct.yaml"),
    "encode": Command("embedding.encode_cli", "embed photos with an encoder in one forward pass, into latents "
                                              "files like fit's"),
    "edit": Command("embedding.edit_cli", "edit fitted codes: attribute transfer, activations, morphing, "
                                          "jittering, style mixing, arithmetic"),
    "swap": Command("embedding.swap_cli", "Swapping Autoencoder: embed photos in one pass, swap structure and "
                                          "texture, texture arithmetic"),
    "train": Command("embedding.train_cli", "train networks on a folder of photos: a StyleGAN2, or a Swapping "
                                          "Autoencoder (the recipe's model.class_path)"),
    "convert": Command("embedding.checkpoints.convert", "rewrite a checkpoint (NVIDIA, rosinality, project) "
                                                        "in the project's or rosinality's format"),
    "align": Command("embedding.faces.align_cli", "align face photos the way the generator's training data was"),
    "fetch": Command("embedding.fetch_cli", "get a generator that does not ship with the project (mobilestylegan-ffhq: "
                                            "FFHQ 1024²) into the user cache, once"),
}
ALIASES: dict[str, Command] = {
    "dgp": Command("embedding.dgp_cli", "now embed fit (DGP recipes) and embed edit jitter|morph"),
}


def available() -> dict[str, Command]:
    """The subcommands whose module exists."""
    return {name: c for name, c in COMMANDS.items() if _installed(c.module)}


def _installed(module: str) -> bool:
    """Whether ``embedding.<...>`` has its file, found without importing its (heavy) parent packages."""
    path = Path(__file__).parent.joinpath(*module.split(".")[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def usage() -> str:
    """The text of ``embed --help``."""
    commands = available()
    width = max(map(len, commands))
    lines = [f"  {name:<{width}}  {c.summary}" for name, c in commands.items()]
    return "\n".join([
        "usage: embed <command> [options]    (embed <command> --help for its options)",
        "",
        "Embed photos into a pretrained StyleGAN2 and edit them there.",
        "",
        "commands:",
        *lines,
        "",
        "aliases for one more release: " + "; ".join(f"embed {name}, {c.summary}" for name, c in ALIASES.items()),
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
    commands = {**available(), **ALIASES}
    if name not in commands:
        print(f"embed: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.argv = [f"embed {name}", *rest]  # what the subcommand's own parser reports as its usage
    return importlib.import_module(commands[name].module).main(rest)


def __getattr__(name: str) -> Any:
    """``EmbedCLI`` and ``TRAINER_DEFAULTS`` from :mod:`embedding.fit_cli`, imported on first use."""
    if name in ("EmbedCLI", "TRAINER_DEFAULTS"):
        return getattr(importlib.import_module("embedding.fit_cli"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
