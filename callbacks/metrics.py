"""PSNR, SSIM and LPIPS of every image at the end of every phase (and, if asked, every N steps inside it), to
TensorBoard and ``metrics.csv``; for face runs, optionally the identity distance and landmark error
between target and render."""

from __future__ import annotations

from lightning import Callback, LightningModule, Trainer

from embedding.faces.crop import resolve_face_box
from embedding.fitting.resume import ResumeStore
from embedding.fitting.run_folder import RunFolder
from embedding.metrics import COLUMNS, append_metrics, measure, read_metrics, write_metrics


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
            68 landmarks over the target's eye distance. Both look at the face only (``face_box``).
        every_n_steps: also measure inside each phase, after its first step and every N steps
            (``--metrics.every_n_steps 50``); 0 measures at phase ends only.
        face_box: where the face is, for the face columns: ``auto`` (the whole image under 256²,
            as the default generator's tight face crops; the face box FFHQ alignment implies for
            larger images), ``whole``, ``ffhq`` or ``[left, top, right, bottom]`` fractions.
    """

    def __init__(self, identity: bool = False, every_n_steps: int = 0,
                 face_box: str | list[float] = "auto", lpips: bool = True) -> None:
        if every_n_steps < 0:
            raise ValueError(f"metrics.every_n_steps must be ≥ 0, got {every_n_steps}")
        resolve_face_box(face_box, 1024)  # refuse a bad box before the run starts
        self.identity = identity
        self.every_n_steps = every_n_steps
        self.face_box = face_box
        self.lpips = lpips

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
        rows = [row for row in measure(view.compared, view.reference, view.measure_mask, progress.stems,
                                       phase, progress.step, self.identity, self.face_box, self.lpips)
                if row["image"] not in failed]
        if trainer.logger is not None:
            for row in rows:
                values = {f"{key}/{phase}/{row['image']}": float(row[key]) for key in COLUMNS[3:] if row[key]}
                trainer.logger.log_metrics(values, step=progress.step)  # the image's own step, as in metrics.csv
        append_metrics(RunFolder(trainer.default_root_dir), rows)

    def _inside(self, phase_step: int) -> bool:
        """Whether a phase's ``phase_step``-th step (not its last) is measured."""
        n = self.every_n_steps
        return n > 0 and (phase_step == 1 or phase_step % n == 0)

    @staticmethod
    def _prune(folder: RunFolder) -> None:
        rows = read_metrics(folder)
        resumed = ResumeStore(folder.root).steps_done()
        kept = [r for r in rows if folder.is_done(r["image"]) or int(r["step"]) <= resumed.get(r["image"], -1)]
        if len(kept) != len(rows) or (rows and list(rows[0]) != COLUMNS):  # an older version's file: new columns
            write_metrics(folder, kept)
