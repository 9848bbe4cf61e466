"""Data side: the datamodule that feeds target images and masks group by group, and training images for GANs."""

from .embedding import EmbeddingDataModule, collate
from .images import ImageFolderDataset

__all__ = ["EmbeddingDataModule", "ImageFolderDataset", "collate"]
