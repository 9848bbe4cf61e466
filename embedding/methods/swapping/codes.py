"""A photo's Swapping Autoencoder codes, and the edits made from them: swaps and texture arithmetic.

Embedding a photo is one forward pass of the encoder. A record (``codes/<stem>.pt`` of a run
folder) holds its structure code ``[s, R/8, R/8]``, its texture code ``[t]`` and which
autoencoder made them (source and SHA-256).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from embedding.checkpoints import load_swapping_autoencoder, provenance
from embedding.files import atomic_write
from embedding.methods.swapping.model import SwappingAutoencoder


@dataclass(eq=False)
class SwapCodes:
    """One photo's structure and texture codes, with the autoencoder that made them in ``metadata``."""

    structure: Tensor
    texture: Tensor
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.path is not None else str(self.metadata.get("stem", "code"))

    @classmethod
    def load(cls, path: str | Path) -> SwapCodes:
        """Read a codes file; errors name it."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such codes file")
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many types for corrupt files
            raise ValueError(f"{path}: unreadable codes file: {e}") from e
        if not isinstance(stored, dict) or not isinstance(stored.get("structure"), Tensor) \
                or not isinstance(stored.get("texture"), Tensor) or stored["structure"].ndim != 3 \
                or stored["texture"].ndim != 1:
            raise ValueError(f"{path}: not a Swapping Autoencoder codes file (structure [s, h, w], texture [t])")
        return cls(stored["structure"].float(), stored["texture"].float(), dict(stored.get("metadata") or {}), path)

    def save(self, path: str | Path) -> None:
        """Write the record atomically."""
        record = {"structure": self.structure.detach().float().cpu(), "texture": self.texture.detach().float().cpu(),
                  "metadata": self.metadata}
        atomic_write(Path(path), lambda f: torch.save(record, f))

    def check(self, autoencoder: SwappingAutoencoder) -> SwapCodes:
        """``self``, after checking that the codes fit ``autoencoder`` (errors name the file)."""
        arch = autoencoder.arch
        want = (arch.structure_channels, arch.structure_size, arch.structure_size)
        if tuple(self.structure.shape) != want or self.texture.shape[0] != arch.texture_dim:
            raise ValueError(f"{self.path or self.name}: codes of shape {list(self.structure.shape)} and "
                             f"{list(self.texture.shape)} do not fit this autoencoder ({list(want)}, "
                             f"[{arch.texture_dim}])")
        return self


def load_autoencoder(source: str) -> tuple[SwappingAutoencoder, dict]:
    """The autoencoder in ``source`` (or the embedded default) on the best device, and what records name it by."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ae = load_swapping_autoencoder(source, device)
    return ae, provenance(source, "swapping_autoencoder", "autoencoder")


@torch.no_grad()
def encode(ae: SwappingAutoencoder, images: Tensor, stems: Sequence[str], metadata: dict) -> list[SwapCodes]:
    """Codes of ``images`` ``[B, 3, R, R]`` in [-1, 1], one record per stem."""
    structure, texture = ae.encode(images.to(next(ae.parameters()).device))
    return [SwapCodes(s.cpu(), t.cpu(), {**metadata, "stem": stem}) for s, t, stem in
            zip(structure, texture, stems, strict=True)]


@torch.no_grad()
def decode(ae: SwappingAutoencoder, structure: Tensor, texture: Tensor) -> Tensor:
    """Images ``[B, 3, R, R]`` from codes ``[B, s, h, w]`` and ``[B, t]`` (not clamped)."""
    device = next(ae.parameters()).device
    return ae.decode(structure.to(device), texture.to(device)).cpu()


def swap(ae: SwappingAutoencoder, structure: SwapCodes, texture: SwapCodes, strength: float = 1.0,
         mask: Tensor | None = None) -> Tensor:
    """Structure of one photo with (a ``strength`` of) the texture of another: ``[1, 3, R, R]``.

    ``strength`` moves the texture code from the structure photo's own (0, its reconstruction) to
    the other's (1). With ``mask`` ``[1, 1, R, R]`` (1 = swap), the swap shows only there, over the
    reconstruction.
    """
    texture_code = torch.lerp(structure.texture, texture.texture, strength)
    swapped = decode(ae, structure.structure[None], texture_code[None])
    if mask is None:
        return swapped
    own = decode(ae, structure.structure[None], structure.texture[None])
    return mask * swapped + (1 - mask) * own


def texture_direction(from_group: Sequence[SwapCodes], to_group: Sequence[SwapCodes]) -> Tensor:
    """Mean texture code of ``to_group`` minus that of ``from_group`` ``[t]``: an attribute as a vector."""
    if not from_group or not to_group:
        raise ValueError("a texture direction needs at least one photo in each group")
    mean = lambda group: torch.stack([c.texture for c in group]).mean(0)  # noqa: E731
    return mean(to_group) - mean(from_group)


def along_direction(ae: SwappingAutoencoder, codes: SwapCodes, direction: Tensor,
                    strengths: Sequence[float]) -> Tensor:
    """Renders ``[K, 3, R, R]`` of the photo with its texture code moved by each strength times ``direction``."""
    textures = torch.stack([codes.texture + s * direction for s in strengths])
    return decode(ae, codes.structure[None].expand(len(strengths), -1, -1, -1), textures)
