"""TensorBoard image grids of the fits as they progress: target | mask | current render, one row per image."""

from __future__ import annotations

import torch
from lightning import Callback, LightningModule, Trainer

from embedding.fitting.method import GroupView
from embedding.images import image_grid


class TensorBoardImages(Callback):
    """Every ``every_n_steps`` steps of a group (and at each phase end) log a grid for the group."""

    def __init__(self, every_n_steps: int = 100, max_images: int = 8) -> None:
        self.every_n_steps = every_n_steps
        self.max_images = max_images

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                           batch_idx: int) -> None:
        progress = pl_module.progress
        step = progress.step
        if trainer.logger is None or not (progress.ended or (self.every_n_steps and step % self.every_n_steps == 0)):
            return
        grid = self.grid(pl_module.view(batch))
        stems = progress.stems
        name = f"fit/{stems[0]}" + (f"+{len(stems) - 1}" if len(stems) > 1 else "")
        trainer.logger.experiment.add_image(name, grid, global_step=step)

    def grid(self, view: GroupView) -> torch.Tensor:
        """[3, H', W'] in [0, 1]: for each image, target, mask and render side by side."""
        n = min(self.max_images, view.images.shape[0])
        target = view.target[:n].float().cpu()
        mask = (view.mask[:n].float().cpu() * 2 - 1).expand(-1, 3, -1, -1)
        tiles = torch.stack([target, mask, view.images[:n].float().cpu().clamp(-1, 1)], dim=1).flatten(0, 1)
        return image_grid((tiles + 1) / 2, 3, padding=2, pad_value=1.0)
