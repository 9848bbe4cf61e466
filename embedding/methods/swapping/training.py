"""Training the Swapping Autoencoder as a LightningModule.

Each step swaps textures inside the batch (image i takes the texture of image i − 1) and makes
one discriminator update, then one autoencoder update of
``L = Lrec + 0.5·LGAN,rec + 0.5·LGAN,swap + Lcooccur`` (Park et al. 2020): L1 reconstruction,
the non-saturating GAN loss of StyleGAN2's discriminator on reconstructions and on swaps, and
that of the patch co-occurrence discriminator on patches of a swap scored against reference
patches of its texture source. Both discriminators get a lazy R1 penalty on real inputs.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import Tensor

from embedding.checkpoints import save_swapping_autoencoder
from embedding.generators import Discriminator
from embedding.images import image_grid
from embedding.methods.swapping.model import PatchCooccurrence, SwappingAutoencoder, random_patches
from embedding.training import lazy_adam, r1_penalty


class SwappingAutoencoderTraining(LightningModule):
    """Trains encoder, generator, image discriminator and patch co-occurrence discriminator from scratch.

    Args:
        resolution, channels, structure_channels, texture_dim, patch_size, patch_channels: the
            architecture (:class:`~embedding.methods.swapping.model.Architecture`).
        d_channel_base, d_channel_max: widths of the image discriminator (StyleGAN2's).
        lr, betas: Adam settings of all networks (the paper's 0.002 and (0, 0.99)).
        rec, gan_rec, gan_swap, cooccur: the loss weights (1, 0.5, 0.5, 1).
        patches, references: patches per image scored, and reference patches of the texture source.
        r1_gamma, patch_r1_gamma, r1_every: R1 weights of both discriminators and how often it runs.
    """

    def __init__(
        self,
        resolution: int = 64,
        channels: tuple[int, ...] = (32, 64, 128, 128),
        structure_channels: int = 8,
        texture_dim: int = 256,
        patch_size: int = 16,
        patch_channels: tuple[int, ...] = (32, 64, 128),
        d_channel_base: int = 2048,
        d_channel_max: int = 128,
        lr: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        rec: float = 1.0,
        gan_rec: float = 0.5,
        gan_swap: float = 0.5,
        cooccur: float = 1.0,
        patches: int = 8,
        references: int = 4,
        r1_gamma: float = 10.0,
        patch_r1_gamma: float = 1.0,
        r1_every: int = 16,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.autoencoder = SwappingAutoencoder(resolution=resolution, channels=channels,
                                               structure_channels=structure_channels, texture_dim=texture_dim,
                                               patch_size=patch_size, patch_channels=patch_channels)
        self.arch = self.autoencoder.arch
        self.discriminator = Discriminator(img_resolution=resolution, channel_base=d_channel_base,
                                           channel_max=d_channel_max)
        self.patch_discriminator = PatchCooccurrence(self.arch)
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("preview", torch.zeros(0), persistent=False)  # the first batch, for sample grids

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        critics = [*self.discriminator.parameters(), *self.patch_discriminator.parameters()]
        return [torch.optim.Adam(self.autoencoder.parameters(), lr=hp.lr, betas=tuple(hp.betas)),
                lazy_adam(critics, hp.lr, hp.betas, hp.r1_every)]

    def cooccurrence(self, images: Tensor, texture_source: Tensor) -> Tensor:
        """Patch logits ``[B·patches]``: patches of ``images`` against reference patches of ``texture_source``."""
        hp = self.hparams
        query = random_patches(images, hp.patches, hp.patch_size).flatten(0, 1)
        refs = random_patches(texture_source, hp.references, hp.patch_size)
        return self.patch_discriminator(query, refs)

    def training_step(self, batch: Tensor | dict, batch_idx: int) -> None:
        real = batch["image"] if isinstance(batch, dict) else batch
        ae_opt, d_opt = self.optimizers()
        if self.preview.numel() == 0:
            self.preview = real[:8].detach().clone()
        texture_source = real.roll(1, dims=0)

        self._train(critics=True)
        with torch.no_grad():
            structure, texture = self.autoencoder.encode(real)
            rec = self.autoencoder.decode(structure, texture)
            swap = self.autoencoder.decode(structure, texture.roll(1, dims=0))
        d_loss = (F.softplus(-self.discriminator(real)).mean() + 0.5 * F.softplus(self.discriminator(rec)).mean()
                  + 0.5 * F.softplus(self.discriminator(swap)).mean())
        patch_loss = (F.softplus(-self.cooccurrence(texture_source, texture_source)).mean()
                      + F.softplus(self.cooccurrence(swap, texture_source)).mean())
        d_opt.zero_grad(set_to_none=True)
        self.manual_backward(d_loss + patch_loss)
        if self.global_step // 2 % self.hparams.r1_every == 0:
            r1, patch_r1 = self.r1_penalties(real)
            hp = self.hparams
            self.manual_backward((hp.r1_gamma * r1 + hp.patch_r1_gamma * patch_r1) / 2 * hp.r1_every)
            self.log_dict({"loss/r1": r1, "loss/patch_r1": patch_r1})
        d_opt.step()

        self._train(critics=False)
        structure, texture = self.autoencoder.encode(real)
        rec = self.autoencoder.decode(structure, texture)
        swap = self.autoencoder.decode(structure, texture.roll(1, dims=0))
        terms = {"rec": (rec - real).abs().mean(), "gan_rec": F.softplus(-self.discriminator(rec)).mean(),
                 "gan_swap": F.softplus(-self.discriminator(swap)).mean(),
                 "cooccur": F.softplus(-self.cooccurrence(swap, texture_source)).mean()}
        loss = sum(getattr(self.hparams, name) * value for name, value in terms.items())
        ae_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        ae_opt.step()

        self.images_seen += real.shape[0] * self.trainer.world_size
        self.log_dict({f"loss/{k}": v for k, v in terms.items()})
        self.log_dict({"loss/d": d_loss, "loss/patch_d": patch_loss, "kimg": self.images_seen / 1000},
                      prog_bar=True)

    def _train(self, critics: bool) -> None:
        """Gradients for the critics or for the autoencoder, not both."""
        self.autoencoder.requires_grad_(not critics)
        self.discriminator.requires_grad_(critics)
        self.patch_discriminator.requires_grad_(critics)

    def r1_penalties(self, real: Tensor) -> tuple[Tensor, Tensor]:
        """Mean squared gradient norms of both discriminators with respect to their real inputs."""
        hp = self.hparams
        query = random_patches(real.detach(), hp.patches, hp.patch_size).flatten(0, 1)
        refs = random_patches(real.detach(), hp.references, hp.patch_size)
        return (r1_penalty(self.discriminator, real),
                r1_penalty(lambda patches: self.patch_discriminator(patches, refs), query))

    @torch.no_grad()
    def sample_grid(self, count: int, seed: int) -> Tensor:
        """Swap grid of the first training images ``[3, H, W]`` in [0, 1].

        The first row holds the texture sources and the first column the structure sources (the
        top-left tile is blank); each other tile is ``G(structure of its row, texture of its column)``,
        so the diagonal shows the reconstructions.
        """
        images = self.preview[: max(2, min(count, len(self.preview)))].to(self.device)
        if images.numel() == 0:
            return torch.zeros(3, 8, 8)
        ae = self.autoencoder.eval()
        structure, texture = ae.encode(images)
        n = len(images)
        rows = [torch.cat([torch.ones_like(images[:1]), images])]
        for i in range(n):
            swaps = ae.decode(structure[i : i + 1].expand(n, -1, -1, -1), texture).clamp(-1, 1)
            rows.append(torch.cat([images[i : i + 1], swaps]))
        ae.train()
        return image_grid((torch.cat(rows).float().cpu() + 1) / 2, n + 1, padding=1)

    def export(self, folder: str | Path, metadata: dict | None = None, dtype: torch.dtype = torch.float16) -> None:
        """Write the autoencoder (encoder and generator) as ``swapping_autoencoder.pt`` in ``folder``."""
        card = {**(metadata or {}), "images_seen": int(self.images_seen), "steps": int(self.global_step // 2)}
        save_swapping_autoencoder(self.autoencoder, Path(folder) / "swapping_autoencoder.pt", dtype, card)
