"""Data side: reading target images and masks, and the datamodule that feeds them group by group."""

from .embedding import EmbeddingDataModule, GroupRepeatSampler, collate
from .images import IMAGE_EXTENSIONS, ImageFolderDataset, ImageReadError, NoUsableImageError, load_image
from .masks import MaskError, MaskSpec

__all__ = [
    "IMAGE_EXTENSIONS",
    "EmbeddingDataModule",
    "GroupRepeatSampler",
    "ImageFolderDataset",
    "ImageReadError",
    "MaskError",
    "MaskSpec",
    "NoUsableImageError",
    "collate",
    "load_image",
]
