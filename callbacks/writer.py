"""Writes each image's results into the run folder as soon as its group finishes, atomically.

Per image ``<stem>``: ``images/<stem>.<phase>.png`` at the end of each phase, then
``images/<stem>.png``, ``latents/<stem>.npz`` (NVIDIA's ``w`` layout) and, last,
``latents/<stem>.pt`` (the :class:`~embedding.latents.Latents` record: W+, noise maps, metadata
to re-render and, for DGP, the weight difference written just before it). The ``.pt`` file
marks the image as finished: a rerun of the same recipe on the same folder skips it.
"""

from __future__ import annotations

import logging

import torch
from lightning import Callback, LightningModule, Trainer
from PIL import Image

from embedding.latents import Latents
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
        phase = pl_module.schedule.ended_at(pl_module.group_step)
        if phase is None:
            return
        folder = RunFolder(trainer.default_root_dir)
        render = pl_module.current_render()
        last = pl_module.group_step == pl_module.steps_per_group
        failed = pl_module.failed
        for i, stem in enumerate(pl_module.group_stems):
            if stem in failed:
                continue
            try:
                save_png(folder.image_path(stem, phase.name), render[i])
                if last:
                    self.write_image(folder, pl_module, i, stem, render[i])
                    self.finished.append(stem)
            except OSError as e:
                pl_module.mark_failed(stem, f"could not write its results: {e}")
                log.error("%s: could not write its results: %s", stem, e)

    @staticmethod
    def write_image(folder: RunFolder, pl_module: LightningModule, i: int, stem: str, render: torch.Tensor) -> None:
        """Final render, NVIDIA-layout ``.npz``, extras and, last, the ``.pt`` that marks ``stem`` finished."""
        save_png(folder.image_path(stem), render)
        record = Latents(pl_module.w_plus[i].detach().float().cpu(),
                         [n[i : i + 1].detach().float().cpu() for n in pl_module.noise],
                         pl_module.latents_metadata(stem))
        record.save_npz(folder.npz_path(stem))
        write_extra = getattr(pl_module, "write_extra", None)  # DGP: the fine-tuned generator's weight difference
        if write_extra is not None:
            record.weight_diff = write_extra(folder, i, stem)
        record.save(folder.latents_path(stem))
        log.info("finished %s", stem)
