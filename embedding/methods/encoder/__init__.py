"""An encoder into W+ (or W) for a fixed generator: the network and its files (``network``), its training
(``training``, ``EncoderTraining``)."""

from embedding.methods.encoder.network import (
    LatentEncoder,
    build_encoder,
    load_encoder,
    read_encoder_metadata,
    save_encoder,
)

__all__ = ["LatentEncoder", "build_encoder", "load_encoder", "read_encoder_metadata", "save_encoder"]
