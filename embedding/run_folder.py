"""The run folder: where every result of a fit lands, written atomically.

Layout (per input image ``<stem>``)::

    latents/<stem>.pt     dict: w_plus [num_ws, w_dim], noise [maps], metadata
    latents/<stem>.npz    w as [1, num_ws, w_dim] (the layout NVIDIA's tools read)
    generators/<stem>.pt  DGP runs: the fine-tuned generator, as a difference from the pretrained one
    images/<stem>.png     final render; images/<stem>.<phase>.png per finished phase
    metrics.csv           image, phase, psnr, ssim (+ masked variants)
    resume/<hash>.pt      the state of a group still being fitted (deleted when it finishes)
    events.out.tfevents*  TensorBoard
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


class RunFolder:
    """Paths of one run folder and atomic writes into it."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    @property
    def latents(self) -> Path:
        return self.root / "latents"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def generators(self) -> Path:
        return self.root / "generators"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    def latents_path(self, stem: str) -> Path:
        return self.latents / f"{stem}.pt"

    def npz_path(self, stem: str) -> Path:
        return self.latents / f"{stem}.npz"

    def generator_diff_path(self, stem: str) -> Path:
        """DGP: the image's fine-tuned generator weights, as a difference from the pretrained ones."""
        return self.generators / f"{stem}.pt"

    def image_path(self, stem: str, phase: str | None = None) -> Path:
        name = f"{stem}.png" if phase is None else f"{stem}.{phase}.png"
        return self.images / name

    @property
    def resume(self) -> Path:
        """Mid-group checkpoints (see :class:`embedding.resume.ResumeStore`)."""
        return self.root / "resume"

    def remove_leftovers(self) -> list[Path]:
        """Delete the temporary files of interrupted writes (see ``atomic_write``); return their paths."""
        removed = [path for folder in (self.root, self.latents, self.images, self.generators, self.resume)
                   if folder.is_dir() for path in folder.glob(".*.tmp")]
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def is_done(self, stem: str) -> bool:
        """An image is finished once its latents file exists (it is written last)."""
        return self.latents_path(stem).is_file()

    def holds_results(self) -> bool:
        """Whether any image has finished or has a mid-group checkpoint: what a rerun would build on."""
        return any(self.latents.glob("*.pt")) or any(self.resume.glob("*.pt"))


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in the same folder, then rename.

    A kill at any moment leaves either the old file or the new one, never a
    truncated file under the final name; the temporary file it may leave behind
    is removed by ``RunFolder.remove_leftovers`` when the next run starts.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
