"""The latents record: one embedded image's code, the only reader and writer of ``latents/<stem>.pt``.

A record is W+ ``[num_ws, w_dim]`` (float32), the noise maps in layer order, metadata (the
pretrained generator's source and SHA-256, the recipe or edit that made it) and, for Deep
Generative Prior results, the image's fine-tuned generator as a weight difference from the
pretrained one (``generators/<stem>.pt``). :meth:`Latents.generator` gives the generator the code
was fitted with, fine-tuned weights included, so every reader renders a record the way it was fitted.
"""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from embedding.checkpoints import DEFAULT_NAME, load_generator, provenance
from embedding.files import atomic_write
from embedding.generators import GeneratorBase
from embedding.weight_diff import apply_diff_file

DIFF_FIELD = "generator_diff"   # metadata key of the weight difference, relative to the run folder


def find_latents(source: Path, stem: str) -> Path:
    """``source`` itself if it is a file, else ``<source>[/latents]/<stem>.pt|.npz``."""
    if source.is_file():
        return source
    for folder in (source, source / "latents"):
        for suffix in (".pt", ".npz"):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    raise FileNotFoundError(f"no latents for image {stem!r} in {source} (looked for {stem}.pt / {stem}.npz)")


@dataclass(eq=False)
class Latents:
    """One embedded image's code and how to render it.

    ``noise`` is ``None`` for NVIDIA ``.npz`` files (they render with the generator's constant
    noise). ``weight_diff`` is the DGP weight-difference file, if the code was fitted together
    with its own generator weights; it is stored relative to the run folder (the latents file's
    grandparent), so a run folder can be moved as a whole. ``path`` is where the record was
    read from, for error messages.
    """

    w_plus: Tensor
    noise: list[Tensor] | None
    metadata: dict = field(default_factory=dict)
    weight_diff: Path | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """The file's stem (``code`` for a record not read from a file)."""
        return self.path.stem if self.path is not None else "code"

    @property
    def source(self) -> str:
        """The pretrained generator the code was fitted with (the embedded default when none is recorded)."""
        return self.metadata.get("generator") or DEFAULT_NAME

    @classmethod
    def load(cls, path: str | Path) -> Latents:
        """Read a project ``.pt`` record or an NVIDIA ``.npz`` (``w`` ``[1, num_ws, w_dim]``); errors name the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such latents file")
        try:
            if path.suffix == ".npz":
                with np.load(path) as data:
                    stored = {"w_plus": torch.from_numpy(data["w"])}
            else:
                stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # numpy and torch raise many types for corrupt files
            raise ValueError(f"{path}: unreadable latents file: {e}") from e
        w = stored.get("w_plus") if isinstance(stored, dict) else None
        if isinstance(w, Tensor) and w.ndim == 3 and w.shape[0] == 1:
            w = w[0]
        if not isinstance(w, Tensor) or w.ndim != 2:
            got = list(w.shape) if isinstance(w, Tensor) else None
            raise ValueError(f"{path}: not a latents file: expected w_plus of shape [num_ws, w_dim], got {got}")
        noise = stored.get("noise")
        if noise is not None:
            if not isinstance(noise, list | tuple) or not all(isinstance(n, Tensor) and n.ndim >= 2 for n in noise):
                raise ValueError(f"{path}: not a latents file: noise must be a list of maps")
            noise = [n.reshape(1, 1, *n.shape[-2:]).float() for n in noise]
        metadata = dict(stored.get("metadata") or {})
        diff = metadata.pop(DIFF_FIELD, None)
        weight_diff = Path(os.path.abspath(path.parent.parent / diff)) if diff else None
        return cls(w.float(), noise, metadata, weight_diff, path)

    def save(self, path: str | Path) -> None:
        """Write the record to ``path`` atomically (a reader never sees a partial file)."""
        path = Path(path)
        metadata = dict(self.metadata)
        if self.weight_diff is not None:
            metadata[DIFF_FIELD] = Path(os.path.relpath(self.weight_diff, path.parent.parent)).as_posix()
        record = {"w_plus": self.w_plus.detach().float().cpu(), "metadata": metadata}
        if self.noise is not None:
            record["noise"] = [n.detach().float().cpu() for n in self.noise]
        atomic_write(path, lambda f: torch.save(record, f))

    def save_npz(self, path: str | Path) -> None:
        """Write W+ as ``w`` ``[1, num_ws, w_dim]``, the layout NVIDIA's tools read, atomically."""
        w = self.w_plus.detach().float().cpu()[None].numpy()

        def write(f) -> None:
            buffer = io.BytesIO()
            np.savez(buffer, w=w)
            f.write(buffer.getvalue())

        atomic_write(Path(path), write)

    def check(self, generator: GeneratorBase) -> Latents:
        """``self``, after checking that W+ and the noise maps fit ``generator`` (errors name the file)."""
        shape = (generator.num_ws, generator.w_dim)
        if tuple(self.w_plus.shape) != shape:
            raise ValueError(f"{self.path}: expected w_plus of shape {list(shape)} for this generator, "
                             f"got {list(self.w_plus.shape)}")
        shapes = generator.synthesis.noise_shapes
        if self.noise is not None and (len(self.noise) != len(shapes) or any(
                tuple(n.shape[-2:]) != s[-2:] for n, s in zip(self.noise, shapes, strict=False))):
            raise ValueError(f"{self.path}: its noise maps do not fit this generator ({len(self.noise)} maps, "
                             f"{len(shapes)} expected of sizes {[s[-1] for s in shapes]})")
        return self

    def check_generator_file(self, source: str) -> None:
        """Refuse ``source`` if its SHA-256 differs from the one recorded (records without a hash pass)."""
        recorded = self.metadata.get("generator_sha256")
        if recorded is None:
            return
        digest = provenance(source)["generator_sha256"]
        if digest != recorded:
            raise ValueError(f"{self.path}: the generator {source} is not the one this code was fitted with "
                             f"(SHA-256 {digest[:12]}…, recorded {recorded[:12]}…); name the right file explicitly")

    def generator(self, pretrained: str | GeneratorBase | None = None) -> GeneratorBase:
        """The generator this code renders with: the pretrained one plus, for DGP results, the fine-tuned weights.

        Without ``pretrained``, the recorded generator is loaded and its SHA-256 checked. A source
        given instead is loaded unchecked (an explicit choice); a loaded generator is used as it
        is, or copied first when the record's weight difference must be applied to it.
        """
        if isinstance(pretrained, GeneratorBase):
            generator = copy.deepcopy(pretrained) if self.weight_diff is not None else pretrained
        else:
            if pretrained is None:
                self.check_generator_file(self.source)
            generator = load_generator(pretrained or self.source)
        if self.weight_diff is not None:
            apply_diff_file(generator, self.weight_diff)
        return generator

    @torch.no_grad()
    def render(self, generator: str | GeneratorBase | None = None) -> Tensor:
        """The code's image ``[1, 3, H, W]`` in [-1, 1], with its noise and its generator (see :meth:`generator`)."""
        generator = self.generator(generator)
        self.check(generator)
        device = generator.w_avg.device
        noise = None if self.noise is None else [n.to(device) for n in self.noise]
        return generator.synthesis(self.w_plus[None].to(device), noise=noise, noise_mode="const")


def render_latents(path: str | Path, generator: str | GeneratorBase | None = None) -> Tensor:
    """Re-render a ``latents/<stem>.pt`` file ([1, 3, H, W] in [-1, 1]) as it was fitted, DGP weights included.

    ``generator`` replaces the recorded pretrained generator (see :meth:`Latents.generator`).
    """
    return Latents.load(path).render(generator)
