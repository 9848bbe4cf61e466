"""The Swapping Autoencoder (Park et al. 2020): structure and texture codes, trained so any swap is realistic.

Train it with ``embed train fit --config recipes/train_swapping_autoencoder.yaml``; encode photos,
swap and edit their codes with ``embed swap``.
"""

from embedding.methods.swapping.model import Architecture, SwappingAutoencoder

__all__ = ["Architecture", "SwappingAutoencoder"]
