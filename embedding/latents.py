"""Latents files: reading stored codes (to start from them or to re-render) and file hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .checkpoints import DEFAULT_NAME, default_path, load_generator
from .generators import Generator


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def generator_file(source: str) -> Path:
    """The file a generator source names (the packaged file for the embedded default)."""
    return default_path("generator") if source == DEFAULT_NAME else Path(source)


def find_latents(source: Path, stem: str) -> Path:
    """``source`` itself if it is a file, else ``<source>[/latents]/<stem>.pt|.npz``."""
    if source.is_file():
        return source
    for folder in (source, source / "latents"):
        for suffix in (".pt", ".npz"):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    raise FileNotFoundError(f"no latents for image {stem!r} in {source} (looked for {stem}.pt / {stem}.npz)")


def read_latents(path: Path, num_ws: int, w_dim: int) -> dict:
    """W+ ``[num_ws, w_dim]`` (and noise and metadata, from ``.pt`` files) from a project or NVIDIA file."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                stored = {"w_plus": torch.from_numpy(data["w"]).reshape(-1, w_dim)}
        else:
            stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # numpy and torch raise many types for corrupt files
        raise ValueError(f"{path}: unreadable latents file: {e}") from e
    w = stored.get("w_plus") if isinstance(stored, dict) else None
    if w is None or tuple(w.shape) != (num_ws, w_dim):
        got = None if w is None else list(w.shape)
        raise ValueError(f"{path}: expected w_plus of shape [{num_ws}, {w_dim}] for this generator, got {got}")
    return stored


@torch.no_grad()
def render_latents(path: str | Path, generator: Generator | None = None) -> torch.Tensor:
    """Re-render a ``latents/<stem>.pt`` file ([1, 3, H, W] in [-1, 1]) with its stored noise.

    Without ``generator``, the one named in the file's metadata is loaded.
    """
    path = Path(path)
    if generator is None:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        generator = load_generator(stored["metadata"]["generator"])
    stored = read_latents(path, generator.num_ws, generator.w_dim)
    device = generator.w_avg.device
    noise = [n.to(device) for n in stored["noise"]] if "noise" in stored else None
    return generator.synthesis(stored["w_plus"][None].to(device), noise=noise)
