"""The project's own checkpoint format: a weights-only ``.pt`` state dict beside a small ``.json`` config.

The JSON names the network kind, its constructor arguments (plus free-form metadata such as
a model card) and, for generators other than StyleGAN2, the architecture; the ``.pt`` holds
nothing but tensors, so reading it can never run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from embedding.checkpoints.errors import CheckpointError, weights_only_error
from embedding.files import atomic_write

FORMAT = "stylegan-embedding/1"


def config_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def is_native(path: Path) -> bool:
    return path.suffix in (".pt", ".pth") and config_path(path).is_file()


def save(net: nn.Module, kind: str, path: str | Path, dtype: torch.dtype | None = None,
         metadata: dict | None = None) -> Path:
    """Write ``net``'s state dict (optionally cast, e.g. to fp16 to halve the size) and its config."""
    path = Path(path)
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in net.state_dict().items()}
    config = {"format": FORMAT, "kind": kind, "init_kwargs": net.init_kwargs, "metadata": metadata or {}}
    if getattr(net, "architecture", "stylegan2") != "stylegan2":
        config["architecture"] = net.architecture
    atomic_write(path, lambda f: torch.save(state, f))
    atomic_write(config_path(path), lambda f: f.write(json.dumps(config, indent=2).encode()))
    return path


def _config(path: Path) -> dict:
    """The ``.json`` config beside a native checkpoint, checked to be of this format (errors name the file)."""
    try:
        config = json.loads(config_path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(config_path(path), f"unreadable checkpoint config: {e}") from e
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else None
        raise CheckpointError(config_path(path), f"unknown checkpoint format {found!r}")
    return config


def kind_of(path: Path) -> str | None:
    """The kind of network (``generator``, ``discriminator``, ...) a native checkpoint holds."""
    return _config(path).get("kind")


def read_config(path: Path, kind: str) -> dict:
    """The ``.json`` config beside a native checkpoint of the given ``kind`` (errors name the file)."""
    config = _config(path)
    if config.get("kind") != kind:
        raise CheckpointError(path, f"holds a {config.get('kind')!r}, not a {kind!r}")
    return config


def architecture(path: Path) -> str:
    """The generator architecture a native checkpoint holds (files without the field hold a StyleGAN2)."""
    return read_config(path, "generator").get("architecture", "stylegan2")


def read(path: Path, kind: str) -> tuple[dict, dict, dict]:
    """Constructor kwargs, state dict and metadata of a native checkpoint of the given ``kind``."""
    config = read_config(path, kind)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for corrupt files
        raise weights_only_error(path, e) from e
    if not isinstance(state, dict):
        raise CheckpointError(path, "expected a state dict")
    return config["init_kwargs"], state, config.get("metadata", {})
