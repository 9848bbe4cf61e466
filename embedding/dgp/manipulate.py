"""Manipulation after a DGP fit: random jittering of the latent, and morphing between two fits.

Both work from a run folder's ``latents/<stem>.pt`` and ``generators/<stem>.pt`` and take seconds.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.func import functional_call

from ..generators import Generator
from .weights import load_fit


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

    The first and last frames are the two fits exactly (weights (1 − t)·θ_A + t·θ_B at t = 0 and 1).
    """
    if steps < 2:
        raise ValueError(f"morph needs at least 2 steps, got {steps}")
    gen_a, w_a, meta_a = load_fit(latents_a)
    gen_b, w_b, meta_b = load_fit(latents_b)
    if meta_a["generator_sha256"] != meta_b["generator_sha256"]:
        raise ValueError(f"{latents_a} and {latents_b} were fitted from different pretrained generators")
    synthesis = gen_a.synthesis
    theta_a, theta_b = dict(synthesis.named_parameters()), dict(gen_b.synthesis.named_parameters())
    buffers = dict(synthesis.named_buffers())
    frames = []
    for i in range(steps):
        t = i / (steps - 1)
        state = {name: (1 - t) * theta_a[name] + t * theta_b[name] for name in theta_a}
        w = (1 - t) * w_a + t * w_b
        frames.append(functional_call(synthesis, {**state, **buffers}, (w[None],), {"noise_mode": "const"}))
    return torch.cat(frames)
