"""Reading photos robustly into the generator's square format, and the Dataset over a set of photos.

Crop and resize policy (images and mask files alike): the centred square of the
shorter side is cut out, then resized to ``R x R``. Images use PIL's Lanczos filter
(antialiased) on float planes, so 16-bit files keep their precision; masks use
nearest neighbour, so a binary mask stays binary.

Pixel modes: grayscale (``1``, ``L``) is repeated into RGB; palette, CMYK, YCbCr and
similar are converted to RGB by PIL; 16-bit grayscale (``I;16*``, and ``I``, taken
as 16-bit) is scaled by 1/65535. Images with alpha (``LA``, ``RGBA``, palette with
transparency) are composited over white: the colour under transparent pixels is
undefined (often black), while cut-outs are conventionally shown on white; alpha is
never used as a mask (masks come from ``masks_dir`` or the recipe).
"""

from __future__ import annotations

import glob
import os
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from embedding.faces.align import align_face, find_faces

from .masks import MaskError, MaskSpec, binarize, blur, finish, region_mask, shape_mask

# A crop box keeping less of an image than this is warned about: CelebA's face square keeps 42% of its
# 178×218 photos, while the same box on a 256² or 1024² photo keeps 25% or 1.6% (a patch, not the face).
MIN_CROP_SHARE = 1 / 3
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_SIXTEEN_BIT = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_WITH_ALPHA = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_TO_RGB = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})


class NoUsableImageError(ValueError):
    """Not a single input image (of those not already finished) could be read."""


class ImageReadError(ValueError):
    """A file that cannot be used as an image; the message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(str(path), reason)
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot read image {self.path}: {self.reason}"


def open_image(path: str | Path) -> Image.Image:
    """Open and fully decode ``path``, upright per its EXIF orientation, refusing decompression bombs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return ImageOps.exif_transpose(im)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        limit = Image.MAX_IMAGE_PIXELS
        raise ImageReadError(path, f"too many pixels (Image.MAX_IMAGE_PIXELS={limit}): {e}") from e
    except Exception as e:
        raise ImageReadError(path, f"{type(e).__name__}: {e}") from e


def centre_square_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the centred square whose side is the shorter side of ``size``."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _on_white(im: Image.Image) -> Image.Image:
    """Composite an image with alpha over a white background."""
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _colour_planes(im: Image.Image) -> tuple[list[Image.Image], float]:
    """Float (mode ``F``) RGB planes of ``im`` (one gray plane for 16-bit) and the value of full intensity."""
    if im.mode in _SIXTEEN_BIT:
        return [im.convert("I").convert("F")], 65535.0
    if im.mode in _WITH_ALPHA or (im.mode == "P" and "transparency" in im.info):
        im = _on_white(im)
    elif im.mode in _TO_RGB:
        im = im.convert("RGB")
    else:
        raise ValueError(f"unsupported pixel mode {im.mode}")
    return [plane.convert("F") for plane in im.split()], 255.0


def _gray_plane(im: Image.Image) -> tuple[Image.Image, float]:
    """One float (mode ``F``) luminance plane of ``im`` and the value of full intensity."""
    if im.mode in _SIXTEEN_BIT:
        return im.convert("I").convert("F"), 65535.0
    return im.convert("L").convert("F"), 255.0


def crop_box(size: tuple[int, int], box: Sequence[int] | None, path: str | Path) -> tuple[int, int, int, int]:
    """``box`` (left, top, right, bottom), checked to lie inside an image of ``size``; None = centred square."""
    if box is None:
        return centre_square_box(size)
    left, top, right, bottom = (int(v) for v in box)
    if not (0 <= left < right <= size[0] and 0 <= top < bottom <= size[1]):
        raise ImageReadError(path, f"crop box {list(box)} does not fit inside the {size[0]}×{size[1]} image")
    kept = (right - left) * (bottom - top) / (size[0] * size[1])
    if kept < MIN_CROP_SHARE:
        # Said once per image size: a box meant for one layout (CelebA's face square) silently embeds a patch of others.
        warnings.warn(f"crop box {list(box)} keeps only {kept:.0%} of {size[0]}×{size[1]} images; "
                      "check data.crop (null = the centred square)", stacklevel=1)
    return left, top, right, bottom


def _sample(planes: list[Image.Image], full: float, resolution: int, resample: int,
            box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    """Crop the centred square of each plane, resize it to ``R x R`` and scale to [0, 1]: ``[C, R, R]``."""
    box, size = box or centre_square_box(planes[0].size), (resolution, resolution)
    arrays = [np.array(p.crop(box).resize(size, resample), dtype=np.float32) for p in planes]
    return (torch.from_numpy(np.stack(arrays)) / full).clamp(0.0, 1.0)


def decode_image(path: str | Path) -> tuple[list[Image.Image], float, tuple[int, int]]:
    """Decode ``path`` into float planes (see :func:`_colour_planes`), full intensity and upright size."""
    im = open_image(path)
    try:
        planes, full = _colour_planes(im)
    except ValueError as e:
        raise ImageReadError(path, str(e)) from e
    return planes, full, im.size


def read_image(
    path: str | Path, resolution: int, box: Sequence[int] | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """The image as ``[3, R, R]`` in [-1, 1] (``box`` cut out, default the centred square), and its upright size."""
    planes, full, size = decode_image(path)
    rgb = _sample(planes, full, resolution, Image.Resampling.LANCZOS, crop_box(size, box, path)).expand(3, -1, -1)
    return rgb * 2.0 - 1.0, size


def load_image(path: str | Path, resolution: int) -> torch.Tensor:
    """The image at ``path`` as a float ``[3, R, R]`` tensor in [-1, 1] (policy: see the module docstring)."""
    return read_image(path, resolution)[0]


def read_gray(
    path: str | Path, resolution: int, box: Sequence[int] | None = None
) -> tuple[torch.Tensor, tuple[int, int]]:
    """A mask file as gray ``[1, R, R]`` in [0, 1], cropped like its image (nearest), and its size."""
    im = open_image(path)
    plane, full = _gray_plane(im)
    # Not checked against the box: a mask of another size than its image is refused right after.
    box = None if box is None else tuple(int(v) for v in box)
    return _sample([plane], full, resolution, Image.Resampling.NEAREST, box), im.size


def read_strokes(path: str | Path, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A scribble layer (an image whose alpha marks the strokes), resized to ``R x R``: RGB in [-1, 1] and binary alpha.

    The layer covers the square the generator sees (after the crop). It is resized with nearest
    neighbour, so the stroke mask stays binary and no colour from under transparent pixels bleeds
    into the strokes.
    """
    im = open_image(path)
    if im.mode not in _WITH_ALPHA and not (im.mode == "P" and "transparency" in im.info):
        raise ImageReadError(path, f"a scribble layer needs an alpha channel marking the strokes (mode {im.mode})")
    rgba = im.convert("RGBA")
    size = (resolution, resolution)
    rgb = np.array(rgba.convert("RGB").resize(size, Image.Resampling.NEAREST), dtype=np.float32) / 127.5 - 1
    alpha = np.array(rgba.getchannel("A").resize(size, Image.Resampling.NEAREST), dtype=np.float32) / 255
    strokes = (torch.from_numpy(alpha) > 0.5).float()[None]
    if not bool(strokes.any()):
        raise ImageReadError(path, "the scribble layer has no stroke (its alpha is transparent everywhere)")
    return torch.from_numpy(rgb).permute(2, 0, 1).clamp(-1, 1), strokes


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (by extension, hidden files left out), sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def resolve_images(
    images: str | os.PathLike | Sequence[str | os.PathLike],
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand folders, files and globs (in the order given, each sorted by name) into image paths, once each.

    Returns the paths and the entries that gave nothing, as ``(entry, reason)``.
    """
    entries = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    paths: dict[Path, Path] = {}
    failures: list[tuple[str, str]] = []
    for entry in entries:
        found = _expand(str(entry))
        if not found:
            failures.append((str(entry), "no such file, and no image file in such a folder or pattern"))
            warnings.warn(
                f"{entry}: no such file, and no image file in such a folder or pattern", stacklevel=3
            )
        for path in found:
            paths.setdefault(path.resolve(), path)
    return list(paths.values()), failures


def _expand(entry: str) -> list[Path]:
    """The image paths one entry stands for: a file, a folder's image files, or a glob's image files."""
    path = Path(entry)
    if path.is_file():
        return [path]
    if path.is_dir():
        return list_image_files(path)
    if any(c in entry for c in "*?["):
        matches = (Path(m) for m in glob.glob(entry))
        return sorted((m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS), key=str)
    return []


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """One stem per path, unique and deterministic: a shared stem gets its extension (``a.png`` -> ``a_png``).

    A name still taken after that gets ``_2``, ``_3``, ... in list order. Every renamed file is warned about.
    """
    counts = Counter(p.stem for p in paths)
    taken: set[str] = set()
    stems = []
    for path in paths:
        stem = f"{path.stem}_{path.suffix.lstrip('.').lower()}" if counts[path.stem] > 1 else path.stem
        candidate, n = stem, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem}_{n}"
        if candidate != path.stem:
            warnings.warn(
                f"stem {path.stem!r} is shared by several inputs; {path} is saved as {candidate!r}",
                stacklevel=3,
            )
        taken.add(candidate)
        stems.append(candidate)
    return stems


class ImageFolderDataset(Dataset):
    """Target images (and their masks) as dict items ``stem, index, image [3,R,R], mask [1,R,R]``.

    Every image is decoded and its mask built once at construction; failures are recorded in
    ``failures`` as ``(path, reason)``, warned about, and dropped. Images for which
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
        """Decode the image (resizing cannot fail) and build its mask; on failure record it and warn."""
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
            warnings.warn(f"skipping {path}: {e}", stacklevel=4)
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
            faces = find_faces(_on_white(open_image(path)))
            if not faces:
                raise ImageReadError(path, "no face found to align")
            self._landmarks[path] = faces[0].landmarks
        return self._landmarks[path]

    def _read(self, stem: str, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """The image ``[3, R, R]`` in [-1, 1] and its processed mask ``[1, R, R]`` in [0, 1]."""
        if self.align:
            aligned = align_face(_on_white(open_image(path)), self._face(path), self.resolution)
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


def mask_from_spec(spec: str | None, resolution: int, blur_sigma: float, invert: bool) -> torch.Tensor | None:
    """A ``[1, 1, R, R]`` mask from an image file, a half (``left``, ...), ``full`` or ``box:x0,y0,x1,y1``.

    ``box`` coordinates are fractions of the image; ``blur_sigma`` softens the edge (pixels) and
    ``invert`` swaps inside and outside. None gives None.
    """
    if spec is None:
        return None
    if Path(spec).is_file():
        mask = (read_gray(spec, resolution)[0] > 0.5).float()
    elif spec.startswith("box:"):
        try:
            box = tuple(float(v) for v in spec[4:].split(","))
        except ValueError as e:
            raise ValueError(f"mask {spec!r}: a box is box:x0,y0,x1,y1 with fractions of the image") from e
        mask = region_mask(MaskSpec("box", box=box).box, resolution)
    elif spec in ("full", "left", "right", "top", "bottom"):
        mask = shape_mask(MaskSpec(spec), resolution)
    else:
        raise ValueError(f"mask {spec!r}: no such file, and not full/left/right/top/bottom/box:x0,y0,x1,y1")
    mask = 1 - mask if invert else mask
    return blur(mask, blur_sigma)[None]
