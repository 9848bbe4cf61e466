"""StyleGAN2 training as a LightningModule: non-saturating logistic loss, lazy R1, EMA generator, DiffAugment.

One step = one discriminator update (plus, every ``r1_every`` steps, the R1 penalty on real
images scaled by ``r1_every``, Karras et al. 2020's lazy regularisation) and one generator
update with style mixing; the EMA generator ``g_ema`` follows the generator with a half-life of
``ema_kimg`` thousand images. Path-length regularisation is left out: it matters for latent
smoothness at high resolution and doubles the cost of a step on small models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning import LightningModule

from embedding.augment import POLICIES, diff_augment
from embedding.checkpoints import save_discriminator, save_generator
from embedding.generators import Discriminator, Generator
from embedding.images import image_grid


def lazy_adam(params: Iterable[torch.Tensor], lr: float, betas: Sequence[float], every: int) -> torch.optim.Adam:
    """Adam for a network whose regulariser joins every ``every``-th step (StyleGAN2's lazy regularisation:
    learning rate and betas scaled so the regulariser's steps do not change the effective settings)."""
    ratio = every / (every + 1)
    return torch.optim.Adam(params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio))


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """R1: the mean squared gradient norm of ``critic``'s scores with respect to its real inputs."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1).mean()


class StyleGAN2Training(LightningModule):
    """Trains a StyleGAN2 generator and discriminator from scratch on the images of the datamodule.

    Args:
        resolution, z_dim, w_dim, mapping_layers, channel_base, channel_max: the architecture.
        g_lr, d_lr, betas: Adam settings (the paper's 0.0025 and (0, 0.99)).
        r1_gamma, r1_every: R1 weight γ and how often the lazy penalty runs.
        ema_kimg, ema_rampup: EMA half-life in thousands of images, ramped up over the first steps.
        style_mixing: probability of mixing two latents at a random layer during generator steps.
        augment: DiffAugment transforms applied to every image the discriminator sees.
    """

    def __init__(
        self,
        resolution: int = 64,
        z_dim: int = 256,
        w_dim: int = 256,
        mapping_layers: int = 4,
        channel_base: int = 4096,
        channel_max: int = 256,
        g_lr: float = 0.0025,
        d_lr: float = 0.0025,
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float = 0.05,
        r1_every: int = 16,
        ema_kimg: float = 2.0,
        ema_rampup: float | None = 0.05,
        style_mixing: float = 0.9,
        augment: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.augment = list(POLICIES) if augment is None else augment
        self.generator = Generator(z_dim=z_dim, w_dim=w_dim, img_resolution=resolution,
                                   mapping_kwargs=dict(num_layers=mapping_layers),
                                   synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max))
        self.discriminator = Discriminator(img_resolution=resolution, channel_base=channel_base,
                                           channel_max=channel_max)
        self.g_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        hp = self.hparams
        return [torch.optim.Adam(self.generator.parameters(), lr=hp.g_lr, betas=tuple(hp.betas)),
                lazy_adam(self.discriminator.parameters(), hp.d_lr, hp.betas, hp.r1_every)]

    def sample_ws(self, batch: int) -> torch.Tensor:
        """W+ codes of random latents, mixed at a random layer with probability ``style_mixing``."""
        g = self.generator
        z = torch.randn(batch, g.z_dim, device=self.device)
        ws = g.mapping(z)
        if self.hparams.style_mixing > 0 and torch.rand(()) < self.hparams.style_mixing:
            cutoff = int(torch.randint(1, g.num_ws, ()))
            ws[:, cutoff:] = g.mapping(torch.randn_like(z))[:, cutoff:]
        return ws

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        return self.discriminator(diff_augment(images, self.augment) if self.augment else images)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        real = batch["image"] if isinstance(batch, dict) else batch
        g_opt, d_opt = self.optimizers()
        batch_size = real.shape[0]

        self.generator.requires_grad_(False)
        self.discriminator.requires_grad_(True)
        with torch.no_grad():
            fake = self.generator.synthesis(self.sample_ws(batch_size), noise_mode="random")
        d_loss = F.softplus(self.discriminate(fake)).mean() + F.softplus(-self.discriminate(real)).mean()
        d_opt.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        if self.global_step // 2 % self.hparams.r1_every == 0:
            r1 = self.r1_penalty(real)
            self.manual_backward(r1 * (self.hparams.r1_gamma / 2) * self.hparams.r1_every)
            self.log("loss/r1", r1)
        d_opt.step()

        self.generator.requires_grad_(True)
        self.discriminator.requires_grad_(False)
        fake = self.generator.synthesis(self.sample_ws(batch_size), noise_mode="random")
        g_loss = F.softplus(-self.discriminate(fake)).mean()
        g_opt.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        g_opt.step()

        self.images_seen += batch_size * self.trainer.world_size
        self.update_ema(batch_size * self.trainer.world_size)
        self.log_dict({"loss/d": d_loss, "loss/g": g_loss, "kimg": self.images_seen / 1000}, prog_bar=True)

    def r1_penalty(self, real: torch.Tensor) -> torch.Tensor:
        """Mean squared gradient norm of D's output with respect to real images."""
        return r1_penalty(self.discriminate, real)

    @torch.no_grad()
    def update_ema(self, step_images: int) -> None:
        """Move ``g_ema`` toward the generator; buffers (w_avg, noise) are copied."""
        half_life = self.hparams.ema_kimg * 1000
        if self.hparams.ema_rampup is not None:
            half_life = min(half_life, float(self.images_seen) * self.hparams.ema_rampup)
        beta = 0.5 ** (step_images / max(half_life, 1e-8))
        for p_ema, p in zip(self.g_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1 - beta)
        for b_ema, b in zip(self.g_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b)

    @torch.no_grad()
    def sample_grid(self, count: int, seed: int) -> torch.Tensor:
        """Renders of ``count`` fixed latents by the EMA generator, 8 a row, ``[3, H, W]`` in [0, 1]."""
        g = self.g_ema.eval()
        z = torch.randn(count, g.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.device)
        images = g.synthesis(g.mapping(z), noise_mode="const").clamp(-1, 1)
        return image_grid((images.float().cpu() + 1) / 2, 8, padding=1)

    def export(self, folder: str | Path, metadata: dict | None = None, dtype: torch.dtype = torch.float16) -> None:
        """Write the EMA generator and the discriminator in the project's format (``generator.pt``, ...)."""
        folder = Path(folder)
        card = {**(metadata or {}), "images_seen": int(self.images_seen), "steps": int(self.global_step // 2)}
        save_generator(self.g_ema, folder / "generator.pt", dtype=dtype, metadata=card)
        save_discriminator(self.discriminator, folder / "discriminator.pt", dtype=dtype, metadata=card)
