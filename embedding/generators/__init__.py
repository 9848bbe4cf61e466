"""Generator architectures in plain PyTorch behind one interface (:mod:`.base`): StyleGAN2 and MobileStyleGAN."""

from .base import GeneratorBase, SynthesisBase
from .discriminator import Discriminator
from .mobilestylegan import MobileStyleGAN
from .stylegan2 import Generator, MappingNetwork, SynthesisNetwork

__all__ = ["Discriminator", "Generator", "GeneratorBase", "MappingNetwork", "MobileStyleGAN", "SynthesisBase",
           "SynthesisNetwork"]
