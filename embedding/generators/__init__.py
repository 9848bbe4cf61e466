"""StyleGAN2 networks in plain PyTorch."""

from embedding.generators.discriminator import Discriminator
from embedding.generators.stylegan2 import Generator, MappingNetwork, SynthesisNetwork

__all__ = ["Discriminator", "Generator", "MappingNetwork", "SynthesisNetwork"]
