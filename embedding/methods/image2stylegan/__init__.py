"""Image2StyleGAN / Image2StyleGAN++: each photo's W+ code and noise maps fitted phase by phase (Eq. 1, Alg. 1-6)."""

from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import Phase, mkn, mst, reconstruction_phases, wi

__all__ = ["EmbeddingModule", "Phase", "mkn", "mst", "reconstruction_phases", "wi"]
