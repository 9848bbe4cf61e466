"""Training images for GANs: a fixed crop box, resized once and kept in memory, random horizontal flips.

Small datasets (a few thousand photos) are decoded once at ``setup`` into a uint8 tensor, so a
step costs no decoding. ``holdout_fraction`` keeps a stable, name-hashed share of the files out
of training, so the same photos can later test embedding on faces the generator never saw.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from embedding.images import ImageReadError, read_image, resolve_images

log = logging.getLogger(__name__)


def is_held_out(path: str | Path, fraction: float) -> bool:
    """Whether ``path``'s file name falls in the held-out share (stable across runs and machines)."""
    return zlib.crc32(Path(path).name.encode()) % 10_000 < fraction * 10_000


def read_crop(path: Path, box: Sequence[int] | None, resolution: int) -> torch.Tensor:
    """``[3, R, R]`` uint8: the ``box`` (left, top, right, bottom; default: centred square) resized with Lanczos.

    Pixel modes are handled as for embedding (alpha over white, 16-bit kept until the resize).
    """
    image, _ = read_image(path, resolution, box)
    return ((image + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class _InMemory(Dataset):
    def __init__(self, images: torch.Tensor, hflip: bool) -> None:
        self.images, self.hflip = images, hflip

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.images[i].float() / 127.5 - 1
        return x.flip(-1) if self.hflip and torch.rand(()) < 0.5 else x


class TrainingImages(LightningDataModule):
    """Photos for training a generator: ``images`` (folders, files, globs) cropped by ``crop`` to ``resolution``.

    Args:
        crop: pixel box (left, top, right, bottom) cut from every photo before resizing; None =
            the centred square. For CelebA's aligned 178×218 photos, [25, 57, 153, 185] is the
            128×128 square around the face (centre 89, 121).
        holdout_fraction: share of files (by name hash) left out of training; see ``is_held_out``.
    """

    def __init__(
        self,
        images: str | list[str],
        resolution: int = 64,
        crop: tuple[int, int, int, int] | None = None,
        hflip: bool = True,
        holdout_fraction: float = 0.0,
        batch_size: int = 32,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.dataset: _InMemory | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.dataset is not None:
            return
        hp = self.hparams
        found, missing = resolve_images(hp.images)
        for entry, reason in missing:
            log.warning("skipping %s: %s", entry, reason)
        paths = [p for p in found if not is_held_out(p, hp.holdout_fraction)]
        images = []
        for path in paths:
            try:
                images.append(read_crop(path, hp.crop, hp.resolution))
            except ImageReadError as e:
                log.warning("skipping %s", e)
        if len(images) < hp.batch_size:
            raise ValueError(f"{len(images)} usable training image(s) in {hp.images}, fewer than one batch "
                             f"(batch_size={hp.batch_size})")
        log.info("%d training images at %d², %d held out", len(images), hp.resolution, len(found) - len(paths))
        self.dataset = _InMemory(torch.stack(images), hp.hflip)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=self.hparams.batch_size, shuffle=True, drop_last=True,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)
