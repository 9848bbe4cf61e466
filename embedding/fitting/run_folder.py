"""The run folder: where every result of a fit lands, written atomically.

Layout (per input image ``<stem>``)::

    latents/<stem>.pt     dict: w_plus [num_ws, w_dim], noise [maps], metadata
    latents/<stem>.npz    w as [1, num_ws, w_dim] (the layout NVIDIA's tools read)
    generators/<stem>.pt  DGP runs: the fine-tuned generator, as a difference from the pretrained one
    images/<stem>.png     final render; images/<stem>.<phase>.png per finished phase
    metrics.csv           image, phase, psnr, ssim (+ masked variants)
    resume/<hash>.pt      the state of a group still being fitted (deleted when it finishes)
    events.out.tfevents*  TensorBoard
    config.yaml           the resolved recipe (reruns the experiment)
    recipe.json           the settings the results depend on, and their fingerprint
    run.lock              the lock of the run using the folder, while it runs
"""

from __future__ import annotations

import os
import struct
from pathlib import Path


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
        """Mid-group checkpoints (see :class:`embedding.fitting.resume.ResumeStore`)."""
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

    def last_logged_step(self) -> int:
        """The largest step of any TensorBoard event in the folder (0 when none): where a rerun's steps go on."""
        return max((_last_event_step(path) for path in self.root.glob("events.out.tfevents.*")), default=0)

    def holds_results(self) -> bool:
        """Whether any image has finished or has a mid-group checkpoint: what a rerun would build on."""
        return any(self.latents.glob("*.pt")) or any(self.resume.glob("*.pt"))


def _last_event_step(path: Path) -> int:
    """The largest ``step`` among the events of one TensorBoard file; a damaged tail is ignored."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto.event_pb2 import Event

    last = 0
    with open(path, "rb") as f:
        while header := f.read(12):  # record: length (u64), its CRC (u32), data, the data's CRC (u32)
            if len(header) < 12:
                break
            (length,) = struct.unpack("<Q", header[:8])
            data = f.read(length)
            if len(data) < length or len(f.read(4)) < 4:
                break
            try:
                last = max(last, Event.FromString(data).step)
            except DecodeError:  # a record cut short by a kill: what came before still counts
                break
    return last
