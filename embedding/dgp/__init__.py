"""Deep Generative Prior on StyleGAN2: restoration by fitting a latent and the generator's weights per image."""

from .manipulate import jitter, load_dgp_record, load_fit, morph
from .module import DGPModule
from .stages import Stage, progressive_stages
from .weights import apply_diff

__all__ = ["DGPModule", "Stage", "apply_diff", "jitter", "load_dgp_record", "load_fit", "morph",
           "progressive_stages"]
