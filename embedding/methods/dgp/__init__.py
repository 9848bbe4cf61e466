"""Deep Generative Prior on StyleGAN2: restoration by fitting a latent and the generator's weights per image.

Run it with ``embed fit --config recipes/dgp_<task>.yaml``; jitter and morph its results with
``embed edit jitter`` / ``embed edit morph`` (they render with each fit's own weights).
"""

from embedding.methods.dgp.module import DGPModule
from embedding.methods.dgp.stages import Stage, progressive_stages

__all__ = ["DGPModule", "Stage", "progressive_stages"]
