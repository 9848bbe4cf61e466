"""Deep Generative Prior on StyleGAN2: restoration by fitting a latent and the generator's weights per image."""

from .manipulate import jitter, morph
from .module import DGPModule
from .stages import Stage, progressive_stages
from .weights import apply_diff, load_fit

__all__ = ["DGPModule", "Stage", "apply_diff", "jitter", "load_fit", "morph", "progressive_stages"]
