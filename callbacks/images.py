"""TensorBoard image grids of the fits as they progress: target | mask | current render, one row per image."""

from __future__ import annotations

import torch
from lightning import Callback, LightningModule, Trainer
from torchvision.utils import make_grid


class TensorBoardImages(Callback):
    """Every ``every_n_steps`` steps of a group (and at each phase end) log a grid for the group."""

    def __init__(self, every_n_steps: int = 100, max_images: int = 8) -> None:
        self.every_n_steps = every_n_steps
        self.max_images = max_images

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: dict,
                           batch_idx: int) -> None:
        step = pl_module.group_step
        phase_end = pl_module.schedule.ended_at(step) is not None
        if trainer.logger is None or not (phase_end or (self.every_n_steps and step % self.every_n_steps == 0)):
            return
        display_batch = getattr(pl_module, "display_batch", None)  # e.g. DGP shows the degraded target
        grid = self.grid(display_batch(batch) if display_batch else batch, pl_module.current_render())
        name = f"fit/{pl_module.group_stems[0]}" + (f"+{len(pl_module.group_stems) - 1}" if
                                                    len(pl_module.group_stems) > 1 else "")
        trainer.logger.experiment.add_image(name, grid, global_step=step)

    def grid(self, batch: dict, render: torch.Tensor) -> torch.Tensor:
        """[3, H', W'] in [0, 1]: for each image, target, mask and render side by side."""
        n = min(self.max_images, render.shape[0])
        target = batch["image"][:n].float().cpu()
        mask = (batch["mask"][:n].float().cpu() * 2 - 1).expand(-1, 3, -1, -1)
        tiles = torch.stack([target, mask, render[:n].float().cpu().clamp(-1, 1)], dim=1).flatten(0, 1)
        return make_grid((tiles + 1) / 2, nrow=3, padding=2, pad_value=1.0)
