"""The datamodule that feeds target images to the embedding module, one group of images at a time."""

from __future__ import annotations

import logging

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from embedding.fitting.resume import ResumeStore
from embedding.fitting.run_folder import RunFolder
from embedding.fitting.sampler import GroupRepeatSampler, resumed_groups
from embedding.masks import MaskSpec

from .images import ImageFolderDataset

log = logging.getLogger(__name__)


def collate(items: list[dict]) -> dict:
    """Stack items into the batch: ``stem`` list, ``index`` [B], ``image`` [B,3,R,R], ``mask`` [B,1,R,R]
    and, when images are paired, ``second`` [B,3,R,R]."""
    batch = {
        "stem": [item["stem"] for item in items],
        "index": torch.tensor([item["index"] for item in items], dtype=torch.long),
        "image": torch.stack([item["image"] for item in items]),
        "mask": torch.stack([item["mask"] for item in items]),
    }
    if "second" in items[0]:
        batch["second"] = torch.stack([item["second"] for item in items])
    return batch


class EmbeddingDataModule(LightningDataModule):
    """Target images and masks for fitting, ``batch_size`` images at a time, each group for all its steps.

    Args:
        images: a folder (its image files, sorted by name), a file, a glob, or a list of those.
        masks_dir: folder of mask files matched by stem (1 / white = the pixel counts).
        mask: a mask given in the recipe, used for images without a file in ``masks_dir``.
        dilate: grow each mask by this many pixels (at the generator's resolution).
        blur_sigma: Gaussian blur of each mask, in pixels (the paper's ``Mblur``).
        crop: pixel box (left, top, right, bottom) cut from every photo and mask file before the
            resize, instead of the centred square: align photos as the generator's data was.
        second: a second image paired with each input (crossover's I2, the scribble's base image,
            the style image): one file for every input, or a folder with a file of each input's stem.
        solutions: fit each input this many times from different random starts (``<stem>_1`` ...
            ``<stem>_K``), e.g. K plausible inpaintings from U[-a, a] offsets (``model.w_init_offset``).
        scribble: a layer of strokes (an image whose alpha marks them) painted over every input, for
            edits by scribbles: the scribbled image is fitted, the input becomes ``second`` and the
            strokes the mask.
        batch_size: images fitted together (one group).
        resolution: side of the square targets; None takes the module's ``target_resolution``.
        skip_done: leave out images whose results are already in the run folder (``default_root_dir``).
        num_workers: DataLoader worker processes.
        align: ``"ffhq"`` FFHQ-aligns each photo's best face on the fly (detector + landmarks from
            :mod:`embedding.faces`) instead of cutting the centred square; photos without a face fail.
        paste_back: also write ``pasted/<stem>.png``, the final render pasted into the whole photo the
            input was aligned from (by ``embed align``, whose record ``<stem>.json`` lies beside it).

    The module must provide ``steps_per_group`` (optimisation steps per group): the
    loader yields each group that many times. After ``setup``, ``failures`` lists
    unreadable inputs as ``(path, reason)`` (counted in the log here, named by the caller: ``embed fit``'s
    summary) and ``skipped`` the stems already done.
    When everything is done, the loader is empty: Lightning warns "Total length of
    `DataLoader` across ranks is zero", logs "`Trainer.fit` stopped: No training batches"
    and ``fit`` returns without a training step.
    Multi-device: the sampler shards groups by rank itself, so the trainer must run with
    ``use_distributed_sampler: false`` (Lightning refuses to inject its sampler otherwise).
    """

    def __init__(
        self,
        images: str | list[str],
        masks_dir: str | None = None,
        mask: MaskSpec | None = None,
        dilate: int = 0,
        blur_sigma: float = 0.0,
        crop: tuple[int, int, int, int] | None = None,
        second: str | None = None,
        solutions: int = 1,
        scribble: str | None = None,
        batch_size: int = 1,
        resolution: int | None = None,
        skip_done: bool = True,
        num_workers: int = 0,
        align: str | None = None,
        paste_back: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = images
        self.masks_dir = masks_dir
        self.mask = mask
        self.dilate = dilate
        self.blur_sigma = blur_sigma
        self.crop = crop
        self.second = second
        self.solutions = solutions
        self.scribble = scribble
        self.batch_size = batch_size
        self.resolution = resolution
        self.skip_done = skip_done
        self.num_workers = num_workers
        self.align = align
        self.paste_back = paste_back
        self.dataset: ImageFolderDataset | None = None
        self.failures: list[tuple[str, str]] = []
        self.skipped: list[str] = []
        # With fewer groups than processes, some processes have nothing to fit.
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def setup(self, stage: str) -> None:
        """Read and check every input once; drop finished images when ``skip_done``."""
        if self.dataset is not None:
            return
        resolution = self.resolution or self.trainer.lightning_module.target_resolution
        skip = RunFolder(self.trainer.default_root_dir).is_done if self.skip_done else None
        self.dataset = ImageFolderDataset(
            self.images,
            resolution,
            self.masks_dir,
            self.mask,
            self.dilate,
            self.blur_sigma,
            skip=skip,
            cache_size=self.batch_size,
            crop=self.crop,
            second=self.second,
            solutions=self.solutions,
            scribble=self.scribble,
            align=self.align,
        )
        self.failures = self.dataset.failures
        self.skipped = self.dataset.skipped
        counts = f"{len(self.dataset)} image(s) to fit, {len(self.skipped)} already done and skipped"
        if self.failures:  # named once, with their reasons, in the run's summary
            log.warning("%s, %d input(s) left out as unusable (named at the end)", counts, len(self.failures))
        else:
            log.info("%s", counts)

    def train_dataloader(self) -> DataLoader:
        """Each group of ``batch_size`` images, ``steps_per_group`` times in a row."""
        sampler = GroupRepeatSampler(
            len(self.dataset),
            self.batch_size,
            self.trainer.lightning_module.steps_per_group,
            rank=self.trainer.global_rank,
            world_size=self.trainer.world_size,
            done_steps=resumed_groups(ResumeStore(self.trainer.default_root_dir),
                                      [stem for stem, _ in self.dataset.items], self.batch_size),
        )
        return DataLoader(
            self.dataset, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers
        )
