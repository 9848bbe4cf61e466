"""Embed real photos into a pretrained StyleGAN2 (W+ and noise space) and edit them there.

    from embedding import fit
    run = fit("recipes/reconstruct.yaml", "photos/", "runs/mine", model={"steps": {"WI": 200, "Mkn": 100}})
    run.latents(run.finished[0]).render()      # [1, 3, H, W] in [-1, 1]

The names below are imported on first use, so ``embed --help`` starts without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": ".checkpoints", "load_discriminator": ".checkpoints", "load_generator": ".checkpoints",
    "save_discriminator": ".checkpoints", "save_generator": ".checkpoints",
    "Discriminator": ".generators", "Generator": ".generators",
    "FitResult": ".fitting", "FittingMethod": ".fitting", "GroupView": ".fitting", "Latents": ".latents",
    "render_latents": ".latents", "fit": ".commands.fit", "Run": ".commands.fit", "NothingFitted": ".commands.fit",
    "paste": ".faces.paste", "PasteReport": ".faces.paste",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
