"""During training: sample grids of the networks, and the trained networks in the project's format."""

from __future__ import annotations

from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from embedding.images import save_png


class GeneratorSamples(Callback):
    """Every ``every_n_steps`` iterations, the module's ``sample_grid(count, seed)`` to TensorBoard and ``samples/``.

    StyleGAN2 renders fixed latents with its EMA generator; the Swapping Autoencoder shows a swap grid.
    """

    def __init__(self, every_n_steps: int = 500, count: int = 32, seed: int = 0) -> None:
        self.every_n_steps, self.count, self.seed = every_n_steps, count, seed

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step // max(1, len(trainer.optimizers))
        if trainer.is_global_zero and step % self.every_n_steps == 0:
            grid = pl_module.sample_grid(self.count, self.seed)
            if trainer.logger is not None:
                trainer.logger.experiment.add_image("samples", grid, global_step=step)
            folder = Path(trainer.default_root_dir) / "samples"
            folder.mkdir(parents=True, exist_ok=True)
            save_png(folder / f"{step:07d}.png", grid * 2 - 1)  # the grid is in [0, 1]


class ExportNetworks(Callback):
    """Write ``g_ema`` and D in the project's format (fp16) every ``every_n_steps`` steps and at the end."""

    def __init__(self, folder: str = "export", every_n_steps: int = 1000, model_card: dict | None = None) -> None:
        self.folder, self.every_n_steps, self.model_card = folder, every_n_steps, model_card or {}

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step // max(1, len(trainer.optimizers))
        if trainer.is_global_zero and step % self.every_n_steps == 0:
            self.export(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            self.export(trainer, pl_module)

    def export(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pl_module.export(Path(trainer.default_root_dir) / self.folder, metadata=self.model_card)
