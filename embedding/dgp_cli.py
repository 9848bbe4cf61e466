"""The ``embed-dgp`` command: Deep Generative Prior restoration, and jittering/morphing of its results.

    embed-dgp fit --config recipes/dgp_colorize.yaml          # restore (LightningCLI, like ``embed fit``)
    embed-dgp jitter runs/dgp_colorize/latents/<stem>.pt --count 8 --sigma 0.3 --out jitter/
    embed-dgp morph runs/a/latents/<stem>.pt runs/b/latents/<stem>.pt --steps 8 --out morph/

``fit`` runs the same callbacks and writes the same run folder as ``embed fit``, plus
``generators/<stem>.pt`` (the fine-tuned generator as a weight difference). ``jitter`` and
``morph`` re-render from those files and write one PNG per frame plus ``grid.png``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch
from torchvision.utils import make_grid

from callbacks.writer import save_png
from datamodules import NoUsableImageError

from .checkpoints import CheckpointError
from .cli import EmbedCLI
from .dgp import DGPModule, jitter, morph

log = logging.getLogger("embedding")


class DGPCLI(EmbedCLI):
    """``EmbedCLI`` fitting ``DGPModule``: the same datamodule, callbacks, run folder and recipe sections."""

    module_class = DGPModule


def write_frames(frames: torch.Tensor, out: Path, prefix: str) -> None:
    """Write ``frames`` [N, 3, H, W] in [-1, 1] as ``<prefix><i>.png`` and a one-row ``grid.png`` into ``out``."""
    for i, frame in enumerate(frames):
        save_png(out / f"{prefix}{i:02d}.png", frame)
    save_png(out / "grid.png", make_grid(frames.clamp(-1, 1), nrow=len(frames), padding=1, pad_value=1.0))
    log.info("wrote %d frame(s) and grid.png to %s", len(frames), out)


def manipulate(argv: list[str]) -> None:
    """``embed-dgp jitter ...`` / ``embed-dgp morph ...``: re-render fitted results (seconds, no fitting)."""
    parser = argparse.ArgumentParser(prog="embed-dgp", description="manipulate DGP results after fitting")
    sub = parser.add_subparsers(dest="command", required=True)
    j = sub.add_parser("jitter", help="random jittering: Gaussian noise on the fitted latent")
    j.add_argument("latents", type=Path, help="latents/<stem>.pt of a DGP run")
    j.add_argument("--count", type=int, default=8)
    j.add_argument("--sigma", type=float, default=0.3, help="noise in units of W's per-channel spread")
    j.add_argument("--seed", type=int, default=0)
    j.add_argument("--out", type=Path, required=True, help="folder for the frames")
    m = sub.add_parser("morph", help="interpolate latent and generator weights between two fits")
    m.add_argument("latents_a", type=Path)
    m.add_argument("latents_b", type=Path)
    m.add_argument("--steps", type=int, default=8)
    m.add_argument("--out", type=Path, required=True, help="folder for the frames")
    args = parser.parse_args(argv)
    if args.command == "jitter":
        frames = jitter(args.latents, args.count, args.sigma, args.seed)
        write_frames(frames, args.out, f"{args.latents.stem}.jitter")
    else:
        frames = morph(args.latents_a, args.latents_b, args.steps)
        write_frames(frames, args.out, "morph")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``embed-dgp`` console script."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r".*configure_optimizers.*returned `None`")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] in ("jitter", "morph"):
            manipulate(argv)
        else:
            sys.argv = [sys.argv[0], *argv]  # LightningCLI parses sys.argv
            DGPCLI()
    except (CheckpointError, NoUsableImageError, OSError, ValueError) as e:
        log.error("%s", e)
        raise SystemExit(1) from e


if __name__ == "__main__":
    main()
