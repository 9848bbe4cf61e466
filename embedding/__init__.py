"""Embed real photos into a pretrained StyleGAN2 (W+ and noise space) and edit them there."""

from .checkpoints import CheckpointError, load_discriminator, load_generator, save_discriminator, save_generator
from .generators import Discriminator, Generator

__all__ = ["CheckpointError", "Discriminator", "Generator", "load_discriminator", "load_generator",
           "save_discriminator", "save_generator"]
