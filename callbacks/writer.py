"""Writes each image's results into the run folder as soon as its group finishes, atomically.

Per image ``<stem>``: ``images/<stem>.<phase>.png`` at the end of each phase, then, once its group
is done, its result through :func:`~embedding.fitting.results.write_result` (whose ``.pt`` file,
written last, marks the image as finished) and, with ``data.paste_back``, ``pasted/<stem>.png``.
"""

from __future__ import annotations

import logging

import torch
from lightning import Callback, LightningModule, Trainer

from embedding.files import atomic_write
from embedding.fitting.results import write_result
from embedding.fitting.resume import ResumeStore
from embedding.fitting.run_folder import RunFolder
from embedding.images import save_png

log = logging.getLogger(__name__)


def paste_back(trainer: Trainer, folder: RunFolder, stem: str, image: torch.Tensor) -> None:
    """With ``data.paste_back``, ``pasted/<stem>.png``: the render in the photo its input was aligned from.

    A missing or stale alignment record is logged; the image's results stand.
    """
    data = trainer.datamodule
    if not getattr(data, "paste_back", False):
        return
    from embedding.faces.paste import paste_frames

    try:
        paste_frames(dict(data.dataset.items)[stem], image[None], [folder.root / "pasted" / f"{stem}.png"])
    except (ValueError, OSError) as e:
        log.warning("%s: not pasted back: %s", stem, e)


class ResultWriter(Callback):
    """Saves renders at every phase end and the latents of every finished image.

    Images that failed (non-finite loss) get no results. A file that cannot be written (a full
    disk, say) fails that image, named in the end-of-run summary, and the others carry on.
    """

    def __init__(self) -> None:
        self.finished: list[str] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Remove what a killed run left behind (no process writes yet: Lightning holds them all here)."""
        if trainer.is_global_zero:
            RunFolder(trainer.default_root_dir).remove_leftovers()
            ResumeStore(trainer.default_root_dir).remove_stale()

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse to start in a run folder that cannot be written, before any work is done."""
        folder = RunFolder(trainer.default_root_dir)
        try:
            folder.latents.mkdir(parents=True, exist_ok=True)
            atomic_write(folder.latents / ".write-test", lambda f: f.write(b""))
            (folder.latents / ".write-test").unlink(missing_ok=True)  # another process may have removed it
        except OSError as e:
            raise OSError(f"the run folder {folder.root} is not writable: {e}") from e

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                           batch_idx: int) -> None:
        progress = pl_module.progress
        if progress.ended is None:
            return
        folder = RunFolder(trainer.default_root_dir)
        images = pl_module.view(batch).images
        failed = pl_module.failed
        for i, stem in enumerate(progress.stems):
            if stem in failed:
                continue
            try:
                save_png(folder.image_path(stem, progress.ended), images[i])
                if progress.finished:
                    write_result(folder, stem, images[i], pl_module.result(i))
                    self.finished.append(stem)
                    paste_back(trainer, folder, stem, images[i])
            except OSError as e:
                pl_module.mark_failed(stem, f"could not write its results: {e}")
                log.error("%s: could not write its results: %s", stem, e)
