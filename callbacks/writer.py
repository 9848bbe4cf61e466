"""Writes each image's results into the run folder as soon as its group finishes, atomically.

Per image ``<stem>``: ``images/<stem>.<phase>.png`` at the end of each phase, then
``images/<stem>.png``, ``latents/<stem>.npz`` (NVIDIA's ``w`` layout) and, last,
``latents/<stem>.pt`` (the :class:`~embedding.latents.Latents` record: W+, noise maps, metadata
to re-render and, for methods that tune the generator (DGP), the weight difference written
just before it in ``generators/<stem>.pt``). The ``.pt`` file
marks the image as finished: a rerun of the same recipe on the same folder skips it.
"""

from __future__ import annotations

import logging

import torch
from lightning import Callback, LightningModule, Trainer
from PIL import Image

from embedding.fitting import FitResult
from embedding.resume import ResumeStore
from embedding.run_folder import RunFolder, atomic_write

log = logging.getLogger(__name__)


def to_pil(image: torch.Tensor) -> Image.Image:
    """A [3, H, W] tensor in [-1, 1] as an 8-bit RGB image."""
    array = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())


def save_png(path, image: torch.Tensor) -> None:
    atomic_write(path, lambda f: to_pil(image).save(f, format="PNG"))


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
                    self.write_image(folder, stem, images[i], pl_module.result(i))
                    self.finished.append(stem)
            except OSError as e:
                pl_module.mark_failed(stem, f"could not write its results: {e}")
                log.error("%s: could not write its results: %s", stem, e)

    @staticmethod
    def write_image(folder: RunFolder, stem: str, image: torch.Tensor, result: FitResult) -> None:
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
