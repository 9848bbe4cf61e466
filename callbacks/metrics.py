"""PSNR, SSIM and LPIPS of every image at the end of every phase (and, if asked, every N steps inside it), to
TensorBoard and ``metrics.csv``; for face runs, optionally the identity distance and landmark error
between target and render."""

from __future__ import annotations

import csv
import fcntl
import io

import torch
from lightning import Callback, LightningModule, Trainer
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from embedding.faces.descriptor import identity_distance
from embedding.faces.landmarks import landmark_error
from embedding.metrics import lpips_metric
from embedding.resume import ResumeStore
from embedding.run_folder import RunFolder, atomic_write

COLUMNS = ["image", "phase", "step", "psnr", "ssim", "lpips", "psnr_masked", "ssim_masked", "identity",
           "landmark_error"]


def psnr(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR in dB for images in [-1, 1]; with a mask, over the masked pixels only."""
    if mask is None:
        return peak_signal_noise_ratio(render, target, data_range=2.0, reduction="none", dim=(1, 2, 3))
    weight = mask.expand_as(render)
    mse = ((render - target).square() * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def ssim(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image SSIM (Gaussian window 11, σ 1.5) for images in [-1, 1]; with a mask, its weighted mean."""
    _, ssim_map = structural_similarity_index_measure(render, target, data_range=2.0, reduction="none",
                                                      return_full_image=True)
    if mask is None:
        return ssim_map.flatten(1).mean(1)
    weight = mask.expand_as(ssim_map)
    return (ssim_map * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)


class EmbeddingMetrics(Callback):
    """At each phase end: per-image PSNR/SSIM/LPIPS (masked variants of the first two where a mask applies),
    logged and written.

    With ``every_n_steps`` N > 0 the same rows are also written after the first step of every
    phase and every N steps of it (``step`` counts the group's steps), for curves of quality
    against steps; a phase's last row is still the one at its end.

    Rows are appended to ``metrics.csv`` in the run folder (one writer at a time across
    processes). When a run starts, rows of images that did not finish (a killed run) and that no
    mid-group checkpoint covers are dropped, so a resumed run writes each row once.

    Args:
        lpips: measure LPIPS (AlexNet, :func:`embedding.metrics.lpips_metric`: images larger than 256²
            are resized down to 256² first, as the field reports it); ``--metrics.lpips false`` skips it.
        identity: also measure faces (``--metrics.identity true``): ``identity`` is the Euclidean
            distance between the face descriptors of target and render (dlib's ResNet descriptor;
            below ~0.6 is the same person) and ``landmark_error`` the mean distance between their
            68 landmarks over the target's eye distance. Both take the whole image as the face.
        every_n_steps: also measure inside each phase, after its first step and every N steps
            (``--metrics.every_n_steps 50``); 0 measures at phase ends only.
    """

    def __init__(self, identity: bool = False, every_n_steps: int = 0, lpips: bool = True) -> None:
        if every_n_steps < 0:
            raise ValueError(f"metrics.every_n_steps must be ≥ 0, got {every_n_steps}")
        self.identity = identity
        self.lpips = lpips
        self.every_n_steps = every_n_steps

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self._prune(RunFolder(trainer.default_root_dir))

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                           batch_idx: int) -> None:
        progress = pl_module.progress
        phase = progress.ended or (progress.phase if self._inside(progress.phase_step) else None)
        if phase is None:
            return
        failed = pl_module.failed
        view = pl_module.view(batch)
        rows = [row for row in self.measure(view.compared, view.reference, view.measure_mask, progress.stems,
                                            phase, progress.step, self.identity, self.lpips)
                if row["image"] not in failed]
        if trainer.logger is not None:
            for row in rows:
                values = {f"{key}/{phase}/{row['image']}": float(row[key]) for key in COLUMNS[3:] if row[key]}
                trainer.logger.log_metrics(values, step=trainer.global_step)
        self._append(RunFolder(trainer.default_root_dir), rows)

    def _inside(self, phase_step: int) -> bool:
        """Whether a phase's ``phase_step``-th step (not its last) is measured."""
        n = self.every_n_steps
        return n > 0 and (phase_step == 1 or phase_step % n == 0)

    @staticmethod
    @torch.no_grad()
    def measure(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, stems: list[str], phase: str,
                step: int, identity: bool = False, lpips: bool = True) -> list[dict]:
        """One row per image: ``render`` against ``target``, masked columns where ``mask`` has holes.

        Face columns only with ``identity``; LPIPS unless ``lpips`` is false.
        """
        target, mask = target.float(), mask.float()
        render = render.float().clamp(-1, 1)
        values = {"psnr": psnr(render, target), "ssim": ssim(render, target)}
        if lpips:
            values["lpips"] = lpips_metric(render, target)
        if identity:
            values["identity"] = identity_distance(render, target)
            values["landmark_error"] = landmark_error(render, target)
        masked = (mask < 1).flatten(1).any(1)
        if masked.any():
            values["psnr_masked"] = psnr(render, target, mask)
            values["ssim_masked"] = ssim(render, target, mask)
        rows = []
        for i, stem in enumerate(stems):
            row = {"image": stem, "phase": phase, "step": step}
            for key in COLUMNS[3:]:
                shown = key in values and (masked[i] or not key.endswith("_masked"))
                row[key] = f"{values[key][i].item():.4f}" if shown else ""
            rows.append(row)
        return rows

    @staticmethod
    def _append(folder: RunFolder, rows: list[dict]) -> None:
        folder.root.mkdir(parents=True, exist_ok=True)
        with open(folder.metrics_csv, "a", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            if f.seek(0, io.SEEK_END) == 0:  # the size now that the lock is held, not when the file was opened
                writer.writeheader()
            writer.writerows(rows)
            f.flush()

    @staticmethod
    def _prune(folder: RunFolder) -> None:
        if not folder.metrics_csv.exists():
            return
        with open(folder.metrics_csv, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
        resumed = ResumeStore(folder.root).steps_done()
        kept = [r for r in rows if folder.is_done(r["image"]) or int(r["step"]) <= resumed.get(r["image"], -1)]
        if len(kept) != len(rows) or reader.fieldnames != COLUMNS:  # a file of an older version: new columns
            write_metrics(folder, kept)


def write_metrics(folder: RunFolder, rows: list[dict]) -> None:
    """Replace the run folder's ``metrics.csv`` by ``rows`` (rows of :data:`COLUMNS`), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(folder.metrics_csv, lambda f: f.write(buffer.getvalue().encode()))
