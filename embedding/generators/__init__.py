"""StyleGAN2 networks in plain PyTorch."""

from .discriminator import Discriminator
from .stylegan2 import Generator, MappingNetwork, SynthesisNetwork

__all__ = ["Discriminator", "Generator", "MappingNetwork", "SynthesisNetwork"]
