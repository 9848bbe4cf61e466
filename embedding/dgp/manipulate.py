"""DGP results after fitting: loading a fit, random jittering of its latent, and morphing between two fits.

All of them work from a run folder's ``latents/<stem>.pt`` (and the ``generators/<stem>.pt`` it
points to) and take seconds. Latents files of other fits are refused: they were not fitted with
a generator of their own, so these renders would not end on them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import edits
from ..generators import Generator
from ..latents import Latents


def load_dgp_record(latents_path: str | Path) -> Latents:
    """The latents record of a DGP result; any other latents file is refused with an error naming it.

    A DGP result is a record of ``embed-dgp fit`` (with the generator fixed, its weights are the
    pretrained ones) or one that carries a fine-tuned generator.
    """
    record = Latents.load(latents_path)
    if not record.is_dgp and record.weight_diff is None:
        raise ValueError(f"{record.path}: not the result of a DGP fit (no fine-tuned generator weights); "
                         "embed-dgp works on latents files written by embed-dgp fit, embed edit on the others")
    return record


def load_fit(latents_path: str | Path, generator: Generator | None = None) -> tuple[Generator, torch.Tensor, dict]:
    """The fine-tuned generator, W+ ``[num_ws, w_dim]`` and metadata of one DGP result (``latents/<stem>.pt``).

    The pretrained generator is the one named in the metadata, checked against its recorded
    SHA-256, or a copy of ``generator``; the record's weight difference is applied to it.
    """
    record = load_dgp_record(latents_path)
    generator = record.generator(generator)
    return generator, record.check(generator).w_plus, record.metadata


@torch.no_grad()
def w_spread(generator: Generator, samples: int = 2000, seed: int = 0) -> torch.Tensor:
    """Per-channel standard deviation of W ``[w_dim]``, from mapped random z: the unit of jitter."""
    device = generator.w_avg.device
    z = torch.randn(samples, generator.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    return generator.mapping(z, None)[:, 0].std(0)


@torch.no_grad()
def jitter(latents_path: str | Path, count: int = 8, sigma: float = 0.3, seed: int = 0) -> torch.Tensor:
    """``count`` renders ``[count, 3, H, W]`` of the fit with Gaussian noise (σ in units of W's spread) on its latent.

    A W-space fit gets the same noise on every row, so the variants stay in W.
    """
    if count < 1 or sigma < 0:
        raise ValueError(f"jitter needs count ≥ 1 and sigma ≥ 0, got {count} and {sigma}")
    generator, w_plus, meta = load_fit(latents_path)
    rows = 1 if meta.get("latent_space") == "w" else generator.num_ws
    eps = torch.randn(count, rows, generator.w_dim, generator=torch.Generator().manual_seed(seed))
    ws = w_plus[None] + sigma * w_spread(generator) * eps
    return generator.synthesis(ws.expand(-1, generator.num_ws, -1), noise_mode="const")


@torch.no_grad()
def morph(latents_a: str | Path, latents_b: str | Path, steps: int = 8) -> torch.Tensor:
    """``steps`` renders ``[steps, 3, H, W]`` from fit A to fit B, interpolating both the latent and the weights.

    The first and last frames are the two fits exactly (weights lerp(θ_A, θ_B, t) at t = 0 and 1).
    """
    if steps < 2:
        raise ValueError(f"morph needs at least 2 steps, got {steps}")
    record_a, record_b = load_dgp_record(latents_a), load_dgp_record(latents_b)
    if record_a.metadata.get("generator_sha256") != record_b.metadata.get("generator_sha256"):
        raise ValueError(f"{latents_a} and {latents_b} were fitted from different pretrained generators")
    gen_a, gen_b = record_a.generator(), record_b.generator()
    code_a, code_b = edits.code_from(record_a, gen_a), edits.code_from(record_b, gen_b)
    return edits.morph(gen_a, code_a, code_b, steps, generator_b=gen_b)
