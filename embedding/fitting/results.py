"""What the run folder keeps of each finished image, written in the one order that makes a rerun safe.

``images/<stem>.png``, ``latents/<stem>.npz`` (NVIDIA's ``w`` layout), a tuned generator's weight
difference ``generators/<stem>.pt`` and, last, ``latents/<stem>.pt`` (the
:class:`~embedding.latents.Latents` record), whose presence marks the image as finished: a rerun
of the same recipe skips it. ``embed fit`` (through its writer callback) and ``embed encode`` both
write through :func:`write_result`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from embedding.files import atomic_write
from embedding.fitting.run_folder import RunFolder
from embedding.images import save_png
from embedding.latents import Latents

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What the run folder keeps of one image: its latents record, and a tuned generator's weight difference."""

    latents: Latents
    generator_diff: dict | None = None


def write_result(folder: RunFolder, stem: str, image: torch.Tensor, result: FitResult) -> None:
    """Final render, NVIDIA-layout ``.npz``, a tuned generator's weights and, last, the ``.pt`` marking it done."""
    save_png(folder.image_path(stem), image)
    record = result.latents
    record.save_npz(folder.npz_path(stem))
    if result.generator_diff is not None:
        path = folder.generator_diff_path(stem)
        atomic_write(path, lambda f: torch.save(result.generator_diff, f))
        record.weight_diff = path
    record.save(folder.latents_path(stem))
    log.info("finished %s", stem)
