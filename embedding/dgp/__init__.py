"""Deep Generative Prior on StyleGAN2: restoration by fitting a latent and the generator's weights per image.

Run it with ``embed fit --config recipes/dgp_<task>.yaml``; jitter and morph its results with
``embed edit jitter`` / ``embed edit morph`` (they render with each fit's own weights).
"""

from .module import DGPModule
from .stages import Stage, progressive_stages
from .weights import apply_diff

__all__ = ["DGPModule", "Stage", "apply_diff", "progressive_stages"]
