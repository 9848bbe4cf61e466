"""The Dataset over a set of photos: each decoded, cut and resized once, with its mask, second image or strokes."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from embedding.faces.align import align_face, find_faces
from embedding.images import (
    ImageReadError,
    NoUsableImageError,
    crop_box,
    decode_image,
    list_image_files,
    on_white,
    open_image,
    read_gray,
    read_image,
    read_strokes,
    resolve_images,
    unique_stems,
)
from embedding.masks import MaskError, MaskSpec, binarize, finish, shape_mask


class ImageFolderDataset(Dataset):
    """Target images (and their masks) as dict items ``stem, index, image [3,R,R], mask [1,R,R]``.

    Every image is decoded and its mask built once at construction; failures are recorded in
    ``failures`` as ``(path, reason)`` and dropped (the caller names them). Images for which
    ``skip(stem)`` is true are listed in ``skipped`` and neither read nor served.
    Stems are computed over all inputs before skipping, so they are stable across reruns.
    ``crop`` (left, top, right, bottom, in pixels) replaces the centred square, for images and
    mask files alike: it aligns photos the way the generator's training data was cut.
    Mask precedence: the file ``masks_dir/<stem>.<ext>`` (``.png`` first), then the
    recipe's ``mask`` spec; with ``masks_dir`` or a ``file`` spec, an image without a
    mask file is a failure. Without either, the mask is all ones. A shape mask is built once
    and shared by every image that uses it.
    The last ``cache_size`` items are kept, so a group served many times in a row is decoded once.
    ``second`` pairs every image with a second one (item key ``second``, read with the same crop):
    one file for all, or a folder holding a file with each image's stem (crossover's I2, the
    scribble's base image, a style image). ``solutions`` > 1 serves each image that many times, as
    ``<stem>_1`` ... ``<stem>_K``: each copy draws its own random start, so K fits give K answers.
    ``scribble``, a layer of strokes (alpha = drawn), is painted over every image: ``image`` is the
    scribbled image, ``second`` the image as it was, and the mask the strokes (then blurred/dilated).
    ``align="ffhq"`` replaces the centred square by the FFHQ alignment of the photo's best face
    (see :mod:`embedding.faces.align`); a photo without a face is a failure. Crop boxes, mask
    files, second images and scribbles are in the photo's frame, so they don't combine with it.
    """

    def __init__(
        self,
        images: str | os.PathLike | Sequence[str | os.PathLike],
        resolution: int,
        masks_dir: str | None = None,
        mask: MaskSpec | None = None,
        dilate: int = 0,
        blur_sigma: float = 0.0,
        skip: Callable[[str], bool] | None = None,
        cache_size: int = 64,
        crop: Sequence[int] | None = None,
        second: str | None = None,
        solutions: int = 1,
        scribble: str | None = None,
        align: str | None = None,
    ) -> None:
        if align not in (None, "ffhq"):
            raise ValueError(f"align must be None or 'ffhq', got {align!r}")
        if align and (crop is not None or masks_dir is not None or second is not None or scribble is not None
                      or (mask is not None and mask.kind == "file")):
            raise ValueError("align moves each photo into its face's frame: crop, masks_dir, mask files, second "
                             "and scribble are in the photo's frame and can't be used with it")
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        if solutions < 1:
            raise ValueError(f"solutions must be at least 1, got {solutions}")
        if second is not None and not Path(second).exists():
            raise ValueError(f"second image {second}: no such file or folder")
        if scribble is not None and (second is not None or mask is not None or masks_dir is not None):
            raise ValueError("a scribble layer gives both the second image and the mask: leave second, mask and "
                             "masks_dir unset")
        if masks_dir is not None and not Path(masks_dir).is_dir():
            raise ValueError(f"masks_dir {masks_dir} is not a folder")
        if mask is not None and mask.kind == "file" and mask.path is None and masks_dir is None:
            raise ValueError("a 'file' mask needs a path or masks_dir")
        self.resolution = resolution
        self.crop = crop
        self.align = align
        self._landmarks: dict[Path, np.ndarray] = {}
        self.mask_spec = mask
        self.masks_dir = masks_dir
        self.dilate = dilate
        self.blur_sigma = blur_sigma
        self.cache_size = cache_size
        self._cache: OrderedDict[int, dict] = OrderedDict()
        self._mask_files = self._index_files(masks_dir)
        self._second = second
        self._second_files = self._index_files(second) if second is not None and Path(second).is_dir() else {}
        self._shape: torch.Tensor | None = None
        self._strokes = read_strokes(scribble, resolution) if scribble is not None else None
        if self._strokes is not None:
            self._shape = self._finish(self._strokes[1], Path(scribble))
        paths, self.failures = resolve_images(images)
        named = list(zip(unique_stems(paths), paths, strict=True))
        if solutions > 1:
            named = [(f"{stem}_{k}", path) for stem, path in named for k in range(1, solutions + 1)]
        self.skipped = [stem for stem, _ in named if skip is not None and skip(stem)]
        skipped = set(self.skipped)
        usable: dict[Path, bool] = {}  # the copies of one photo (solutions) are checked once
        for stem, path in named:
            if stem not in skipped and path not in usable:
                usable[path] = self._usable(stem, path)
        self.items = [(stem, path) for stem, path in named if stem not in skipped and usable[path]]
        if not self.items and not self.skipped:
            listing = "\n".join(f"  {path}: {reason}" for path, reason in self.failures) or "  (no input)"
            raise NoUsableImageError(f"nothing to fit in {images!r}: no input could be used:\n{listing}")

    @staticmethod
    def _index_files(folder: str | None) -> dict[str, Path]:
        """Image files of a folder by stem; for a stem with several files, ``.png`` wins, then the first by name."""
        if folder is None:
            return {}
        index: dict[str, Path] = {}
        files = list_image_files(Path(folder))
        for path in sorted(files, key=lambda p: (p.suffix.lower() != ".png", p.name)):
            index.setdefault(path.stem, path)
        return index

    def _usable(self, stem: str, path: Path) -> bool:
        """Decode the image (resizing cannot fail) and build its mask; on failure record it in ``failures``."""
        try:
            if self.align:
                self._face(path)
            size = decode_image(path)[2]
            crop_box(size, self.crop, path)
            self._mask(stem, path, size)
            if self._second is not None:
                second = self._second_path(path)
                crop_box(decode_image(second)[2], self.crop, second)
        except (ImageReadError, MaskError) as e:
            self.failures.append((str(path), str(e)))
            return False
        return True

    def _second_path(self, path: Path) -> Path:
        """The second image paired with ``path``: the one file, or the folder's file with its stem."""
        if not self._second_files and Path(self._second).is_file():
            return Path(self._second)
        if path.stem not in self._second_files:
            raise ImageReadError(path, f"no second image named {path.stem}.<image extension> in {self._second}")
        return self._second_files[path.stem]

    def _face(self, path: Path) -> np.ndarray:
        """The 68 landmarks of the photo's best face, found once (for ``align``)."""
        if path not in self._landmarks:
            faces = find_faces(on_white(open_image(path)))
            if not faces:
                raise ImageReadError(path, "no face found to align")
            self._landmarks[path] = faces[0].landmarks
        return self._landmarks[path]

    def _read(self, stem: str, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """The image ``[3, R, R]`` in [-1, 1] and its processed mask ``[1, R, R]`` in [0, 1]."""
        if self.align:
            aligned = align_face(on_white(open_image(path)), self._face(path), self.resolution)
            image = torch.from_numpy(np.asarray(aligned, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0
            return image, self._mask(stem, path, aligned.size)
        image, size = read_image(path, self.resolution, self.crop)
        return image, self._mask(stem, path, size)

    def _mask(self, stem: str, path: Path, image_size: tuple[int, int]) -> torch.Tensor:
        """The processed mask of one image (see the class docstring for where it comes from)."""
        if self._strokes is not None:
            return self._shape
        spec = self.mask_spec
        file = self._mask_files.get(stem) or self._mask_files.get(path.stem)
        if file is None and spec is not None and spec.kind == "file" and spec.path is not None:
            file = Path(spec.path)
        if file is not None:
            values, mask_size = read_gray(file, self.resolution, self.crop)
            return self._finish(binarize(values, file, mask_size, image_size), file)
        if spec is not None and spec.kind != "file":
            if self._shape is None:
                self._shape = self._finish(shape_mask(spec, self.resolution), path)
            return self._shape
        if self.masks_dir is not None:
            raise MaskError(path, f"no mask file named {stem}.<image extension> in {self.masks_dir}")
        return torch.ones(1, self.resolution, self.resolution)

    def _finish(self, binary: torch.Tensor, path: Path) -> torch.Tensor:
        """Invert, dilate and blur a binary mask as the recipe asks."""
        invert = self.mask_spec is not None and self.mask_spec.invert
        return finish(binary, path, invert, self.dilate, self.blur_sigma)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        stem, path = self.items[index]
        image, mask = self._read(stem, path)
        item = {"stem": stem, "index": index, "image": image, "mask": mask}
        if self._second is not None:
            item["second"] = read_image(self._second_path(path), self.resolution, self.crop)[0]
        if self._strokes is not None:
            colours, strokes = self._strokes
            item["second"], item["image"] = image, strokes * colours + (1 - strokes) * image
        self._cache[index] = item
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return item
