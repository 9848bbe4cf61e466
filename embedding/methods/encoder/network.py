"""An encoder into W+ (or W) for a fixed generator, and its training (the GAN-editing lecture's second way back).

The encoder is the generator's discriminator up to its 4×4 features (initialised from the
discriminator's weights, as the lecture suggests) and a two-layer head that predicts the offset
of every W+ row (or one W row) from the mean code. It is trained with the generator fixed on
generator samples, whose codes are known (code loss and the render's pixel loss), and on real
photos (pixel loss of the render). Its output starts an optimisation (``w_init: encoder``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from embedding.checkpoints import build_network, native, resolve_file
from embedding.generators import Discriminator
from embedding.generators.layers import FullyConnectedLayer


class LatentEncoder(nn.Module):
    """Image ``[B, 3, R, R]`` in [-1, 1] → code ``[B, num_ws, w_dim]`` (W+, or W repeated on every row)."""

    def __init__(self, discriminator: dict, num_ws: int, w_dim: int, w_plus: bool = True, hidden: int = 512) -> None:
        super().__init__()
        self.init_kwargs = dict(discriminator=discriminator, num_ws=num_ws, w_dim=w_dim, w_plus=w_plus, hidden=hidden)
        self.backbone = Discriminator(**discriminator)
        self.num_ws, self.w_dim, self.rows = num_ws, w_dim, num_ws if w_plus else 1
        features = self.backbone.b4.fc.weight.shape[1]  # the 4×4 features, flattened
        self.hidden = FullyConnectedLayer(features, hidden, activation="lrelu")
        self.out = FullyConnectedLayer(hidden, self.rows * w_dim)
        with torch.no_grad():
            self.out.weight.mul_(0.1)  # start near the mean code
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @property
    def resolution(self) -> int:
        return self.backbone.img_resolution

    def forward(self, images: Tensor) -> Tensor:
        x = None
        for res in self.backbone.block_resolutions:
            x = getattr(self.backbone, f"b{res}")(x, images)
        offset = self.out(self.hidden(x.flatten(1))).view(-1, self.rows, self.w_dim)
        return (self.w_avg + offset).expand(-1, self.num_ws, -1)


def build_encoder(generator: nn.Module, discriminator: Discriminator, w_plus: bool = True) -> LatentEncoder:
    """An encoder for ``generator`` whose backbone starts as ``discriminator`` (their resolutions must match)."""
    if discriminator.img_resolution != generator.resolution:
        raise ValueError(f"the discriminator reads {discriminator.img_resolution}² images but the generator renders "
                         f"{generator.resolution}²")
    encoder = LatentEncoder(discriminator.init_kwargs, generator.num_ws, generator.w_dim, w_plus)
    encoder.backbone.load_state_dict(discriminator.state_dict())
    encoder.w_avg.copy_(generator.w_avg.detach())
    return encoder


def save_encoder(encoder: LatentEncoder, path: str | Path, dtype: torch.dtype | None = None,
                 metadata: dict | None = None) -> Path:
    """Write the encoder in the project's format (``.pt`` weights + ``.json`` config)."""
    return native.save(encoder, "encoder", path, dtype, metadata)


def load_encoder(source: str | Path, device: str | torch.device = "cpu") -> LatentEncoder:
    """An encoder written by :func:`save_encoder`, or ``"default"`` (the one shipped for the default generator);
    frozen, in eval mode (errors name the file)."""
    path = resolve_file(source, "encoder")
    kwargs, state, _ = native.read(path, "encoder")
    return build_network(LatentEncoder, kwargs, state, path).to(device)


def read_encoder_metadata(source: str | Path) -> dict:
    """What an encoder file records of itself: the generator it was trained for, its training."""
    return native.read_config(resolve_file(source, "encoder"), "encoder").get("metadata", {})
