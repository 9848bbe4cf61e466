"""``embed convert``: rewrite any loadable StyleGAN2 checkpoint in the project's format or rosinality's.

    embed convert network-snapshot.pkl ffhq.pt                   # project format: ffhq.pt + ffhq.json
    embed convert network-snapshot.pkl ffhq.pt --to rosinality   # {g_ema, latent_avg, d}, as convert_weight.py
    embed convert model.pt out.pt --network G --dtype float16

The discriminator is converted too when the source holds one. Nothing stored in the source is
executed; the output is written atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from embedding.checkpoints import CheckpointError
from embedding.checkpoints.convert import convert

log = logging.getLogger("embedding")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``embed convert``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="embed convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="NVIDIA .pkl, rosinality .pt, project .pt, or 'default'")
    parser.add_argument("dest", type=Path, help="output .pt (the project format also writes a .json beside it)")
    parser.add_argument("--to", choices=("project", "rosinality"), default="project")
    parser.add_argument("--network", choices=("G_ema", "G"), default="G_ema",
                        help="which generator of a training snapshot (default: G_ema)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    args = parser.parse_args(argv)
    try:
        written = convert(args.source, args.dest, args.to, args.network,
                          torch.float16 if args.dtype == "float16" else None)
    except (CheckpointError, FileNotFoundError) as e:
        log.error("%s", e)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0
