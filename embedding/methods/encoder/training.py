"""Training an encoder into W+ for a fixed generator: generator samples (code and pixel loss) and photos (pixel loss).

``embed train fit --config recipes/train_encoder.yaml``; the trained encoder starts embeddings
(``w_init: encoder``) and ``embed encode``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import Tensor

from embedding.checkpoints import load_discriminator, load_generator
from embedding.images import image_grid
from embedding.methods.encoder.network import build_encoder, save_encoder


class EncoderTraining(LightningModule):
    """Trains a :class:`LatentEncoder` for a fixed generator on its samples and on real photos.

    Args:
        generator: the generator to invert (checkpoint path or ``"default"``).
        discriminator: the weights the backbone starts from (default: the generator's source).
        w_plus: predict every W+ row (True) or one W code (False).
        lr, betas: Adam settings.
        code: weight of the squared error of the predicted code on samples (their true code is known).
        pixel: weight of the pixel MSE of the render, on samples and on real photos.
        truncation: ψ of the samples.
    """

    def __init__(self, generator: str = "default", discriminator: str | None = None, w_plus: bool = True,
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.99), code: float = 1.0, pixel: float = 1.0,
                 truncation: float = 0.8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.generator = load_generator(generator)
        self.encoder = build_encoder(self.generator, load_discriminator(discriminator or generator), w_plus)
        self.generator.requires_grad_(False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.encoder.parameters(), lr=self.hparams.lr, betas=tuple(self.hparams.betas))

    def render(self, ws: Tensor) -> Tensor:
        return self.generator.synthesis(ws, noise_mode="const")

    def training_step(self, batch: Tensor | dict, batch_idx: int) -> Tensor:
        real = batch["image"] if isinstance(batch, dict) else batch
        hp, g = self.hparams, self.generator
        with torch.no_grad():
            z = torch.randn(real.shape[0], g.z_dim, device=self.device)
            ws = g.mapping(z, None, truncation_psi=hp.truncation)
            samples = self.render(ws)
        predicted = self.encoder(samples)
        terms = {"code": (predicted - ws).square().mean(),
                 "pixel_samples": F.mse_loss(self.render(predicted), samples),
                 "pixel_real": F.mse_loss(self.render(self.encoder(real)), real)}
        loss = hp.code * terms["code"] + hp.pixel * (terms["pixel_samples"] + terms["pixel_real"])
        self.log_dict({f"loss/{k}": v for k, v in terms.items()}, prog_bar=True)
        if batch_idx == 0 or not hasattr(self, "preview"):
            self.preview = real[:8].detach()
        return loss

    @torch.no_grad()
    def sample_grid(self, count: int, seed: int) -> Tensor:
        """Real photos (first row) above their encoded renders (second row), ``[3, H, W]`` in [0, 1]."""
        photos = getattr(self, "preview", None)
        if photos is None:
            return torch.zeros(3, 8, 8)
        photos = photos[:count]
        renders = self.render(self.encoder.eval()(photos)).clamp(-1, 1)
        self.encoder.train()
        return image_grid((torch.cat([photos, renders]).float().cpu() + 1) / 2, len(photos), padding=1)

    def export(self, folder: str | Path, metadata: dict | None = None, dtype: torch.dtype = torch.float16) -> None:
        """Write the encoder as ``encoder.pt`` (+ ``.json``) in ``folder``."""
        card = {**(metadata or {}), "generator": self.hparams.generator, "steps": int(self.global_step)}
        save_encoder(self.encoder, Path(folder) / "encoder.pt", dtype, card)
