"""Mid-group checkpoints: the one reader and writer of a run folder's ``resume/`` files.

A checkpoint is :meth:`FittingMethod.group_state` of a group still being fitted (its images,
step, phase, parameters, optimiser state and failures), saved as ``resume/<hash of the
stems>.pt`` while the group runs and deleted once its results are written. The datamodule asks
it how many steps each group has left, the metrics which rows to keep, the method where to go on.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import torch

from embedding.files import atomic_write
from embedding.fitting.run_folder import RunFolder

log = logging.getLogger(__name__)
KEYS = frozenset({"stems", "group_step", "phase", "fail_step", "write_failed", "parameters", "optimizer",
                  "phase_state"})


class ResumeStore:
    """The mid-group checkpoints of one run folder."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.folder = RunFolder(root)
        self.root = self.folder.resume

    def path(self, stems: list[str]) -> Path:
        """The checkpoint of exactly these images (named by a hash of their stems)."""
        digest = hashlib.sha1("\n".join(stems).encode()).hexdigest()[:16]
        return self.root / f"{digest}.pt"

    def write(self, state: dict) -> Path:
        """Save a group's state atomically; returns the file."""
        path = self.path(state["stems"])
        atomic_write(path, lambda f: torch.save(state, f))
        return path

    def delete(self, stems: list[str]) -> None:
        """Forget the checkpoint of these images (their results are written)."""
        self.path(stems).unlink(missing_ok=True)

    def read(self, stems: list[str]) -> dict | None:
        """The checkpoint of these images, or None; tensors are memory-mapped, not read."""
        path = self.path(stems)
        if not path.is_file():
            return None
        state = self._load(path)
        return state if state is not None and state["stems"] == stems else None

    def steps_done(self) -> dict[str, int]:
        """Stem → steps already done, for every image of a group with a checkpoint.

        A checkpoint of a group in which some image is already finished is left out: finished
        images are skipped, so that group never runs again and its other images start afresh.
        """
        steps: dict[str, int] = {}
        for path in sorted(self.root.glob("*.pt")):
            state = self._load(path)
            if state is not None and not any(self.folder.is_done(stem) for stem in state["stems"]):
                steps.update(dict.fromkeys(state["stems"], state["group_step"]))
        return steps

    def remove_stale(self) -> list[Path]:
        """Delete checkpoints of groups in which some image is finished (they never run again); return them."""
        removed = []
        for path in sorted(self.root.glob("*.pt")):
            state = self._load(path)
            if state is not None and any(self.folder.is_done(stem) for stem in state["stems"]):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    @staticmethod
    def _load(path: Path) -> dict | None:
        """A checkpoint's state; a damaged or foreign file is ignored (it only costs the group's work so far)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # torch raises many types for damaged files
            log.warning("ignoring unreadable checkpoint %s: %s", path, e)
            return None
        if not isinstance(state, dict) or not KEYS <= state.keys():
            log.warning("ignoring checkpoint %s: not a mid-group checkpoint of this version", path)
            return None
        return state
