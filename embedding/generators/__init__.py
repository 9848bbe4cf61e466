"""Generator architectures in plain PyTorch behind one interface (:mod:`.base`): StyleGAN2 and MobileStyleGAN."""

from embedding.generators.base import GeneratorBase, SynthesisBase
from embedding.generators.discriminator import Discriminator
from embedding.generators.mobilestylegan import MobileStyleGAN
from embedding.generators.stylegan2 import Generator, MappingNetwork, SynthesisNetwork

__all__ = ["Discriminator", "Generator", "GeneratorBase", "MappingNetwork", "MobileStyleGAN", "SynthesisBase",
           "SynthesisNetwork"]
