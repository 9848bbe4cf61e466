"""Image files: photos read robustly into the generator's square format, masks given by name, PNGs written.

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
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from embedding.files import atomic_write
from embedding.masks import MaskSpec, blur, region_mask, shape_mask

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
    except FileNotFoundError as e:
        raise ImageReadError(path, "no such file") from e
    except UnidentifiedImageError as e:
        raise ImageReadError(path, "not an image: Pillow cannot identify its format") from e
    except Exception as e:
        raise ImageReadError(path, f"{type(e).__name__}: {e}") from e


def centre_square_box(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the centred square whose side is the shorter side of ``size``."""
    width, height = size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def on_white(im: Image.Image) -> Image.Image:
    """Composite an image with alpha over a white background."""
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


def _colour_planes(im: Image.Image) -> tuple[list[Image.Image], float]:
    """Float (mode ``F``) RGB planes of ``im`` (one gray plane for 16-bit) and the value of full intensity."""
    if im.mode in _SIXTEEN_BIT:
        return [im.convert("I").convert("F")], 65535.0
    if im.mode in _WITH_ALPHA or (im.mode == "P" and "transparency" in im.info):
        im = on_white(im)
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

    Returns the paths and the entries that gave nothing, as ``(entry, reason)``: the reason tells a
    missing path from an empty folder, a folder of other files and a pattern matching nothing. Nothing
    is reported here; the caller names them (``embed fit`` in its summary).
    """
    entries = [images] if isinstance(images, (str, os.PathLike)) else list(images)
    paths: dict[Path, Path] = {}
    failures: list[tuple[str, str]] = []
    for entry in entries:
        found = _expand(str(entry))
        if not found:
            failures.append((str(entry), _why_no_image(str(entry))))
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
    if _is_pattern(entry):
        return sorted((m for m in _matches(entry) if m.suffix.lower() in IMAGE_EXTENSIONS), key=str)
    return []


def _is_pattern(entry: str) -> bool:
    return any(c in entry for c in "*?[")


def _matches(pattern: str) -> list[Path]:
    """The files a glob pattern matches."""
    return [m for m in map(Path, glob.glob(pattern)) if m.is_file()]


def _why_no_image(entry: str) -> str:
    """Why an entry gave no image, in plain words that follow its name (``photos/: the folder is empty ...``)."""
    looked_for = f"looked for {' '.join(IMAGE_EXTENSIONS)}"
    path = Path(entry)
    if path.is_dir():
        others = sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        if not others:
            return f"the folder is empty: no images ({looked_for})"
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        return f"the folder has no images: its {len(others)} file(s) ({shown}) are not images ({looked_for})"
    if _is_pattern(entry):
        matched = _matches(entry)
        if not matched:
            return "the pattern matches no file"
        return f"the pattern matches {len(matched)} file(s), none of them an image ({looked_for})"
    if path.exists():
        return "neither a file nor a folder"
    return "no such file or folder"


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


def to_pil(image: torch.Tensor) -> Image.Image:
    """A [3, H, W] tensor in [-1, 1] as an 8-bit RGB image."""
    array = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())


def save_png(path: Path, image: torch.Tensor) -> None:
    """Write a [3, H, W] tensor in [-1, 1] as a PNG, atomically."""
    atomic_write(Path(path), lambda f: to_pil(image).save(f, format="PNG"))


def image_grid(images: torch.Tensor, columns: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """Images ``[N, C, H, W]`` laid out ``columns`` to a row, ``padding`` pixels of ``pad_value`` around each:
    ``[C, H', W']``."""
    count, channels, height, width = images.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    grid = images.new_full((channels, rows * (height + padding) + padding, columns * (width + padding) + padding),
                           pad_value)
    for k, image in enumerate(images):
        top, left = (k // columns) * (height + padding) + padding, (k % columns) * (width + padding) + padding
        grid[:, top : top + height, left : left + width] = image
    return grid
