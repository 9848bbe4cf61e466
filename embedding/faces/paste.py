"""Aligned faces back into their photos: the exact inverse of each face's alignment, blended through a soft mask.

    from embedding import paste
    paste(["runs/mine/latents/anna.pt", "aligned/group_1.png"], out="pasted/")   # pasted/<photo stem>.png

``embed align`` writes ``<stem>.json`` (an :class:`~embedding.faces.align.AlignmentRecord`) beside
each aligned ``<stem>.png``. A result (an aligned image, edited or not, or a latents file rendered
with its own generator) finds its record by its stem: beside it, in the folders of its run's
inputs, in folders given, or given outright. What the result changes (its difference from the
square ``embed align`` cut, made again from the unchanged photo) is warped back with the inverse of
the record's quad, averaged over each photo pixel's footprint when the face is smaller in the photo
than the square, and added through a feathered mask: ``face`` (the landmarks' hull grown over the
forehead) or ``square`` (the aligned square). So an unedited crop gives the photo back exactly, the
photo keeps its pixels outside the mask, and all faces of one photo go into one output photo.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image, ImageDraw

from embedding.faces.align import (
    GRAY16_MODES,
    AlignmentRecord,
    align_face,
    apply_homography,
    check_photo_size,
    gaussian_blur,
    read_upright_photo,
)
from embedding.files import atomic_write, sha256
from embedding.images import decode_image, open_image, unique_stems

MATCH_COLOUR = True   # shift the pasted face's mean colour to the photo's along the mask border (docs/paste_back.md)
MaskKind = Literal["face", "square"]
_SEPARATORS = "._~+@-"


class PasteError(ValueError):
    """A result that cannot be pasted; the message names the file and what to do."""


@dataclass
class Photo:
    """A photo's pixels as floats ``[H, W, C]`` (C = 1 or 3, 0 to ``full``), its alpha and how to write it back."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    full: float
    mode: str

    def image(self) -> Image.Image:
        """The photo as a PIL image of its own mode (8 or 16 bits, alpha kept)."""
        dtype = np.uint16 if self.full > 255 else np.uint8
        pixels = np.clip(np.rint(self.pixels), 0, self.full).astype(dtype)
        if self.alpha is not None:
            pixels = np.concatenate([pixels, self.alpha[..., None]], axis=-1)
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        if image.mode != self.mode:
            raise ValueError(f"a {self.mode} photo came out as {image.mode}")
        return image


def read_photo(path: str | Path) -> Photo:
    """An upright photo (EXIF orientation applied) as :class:`Photo`; gray, 16-bit gray and alpha are kept."""
    im = open_image(path)
    if im.mode in GRAY16_MODES:
        return Photo(np.asarray(im.convert("I"), dtype=np.float32)[..., None], None, 65535.0, "I;16")
    has_alpha = "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info)
    gray = im.mode in ("1", "L", "LA", "La")
    converted = np.asarray(im.convert(("LA" if gray else "RGBA") if has_alpha else ("L" if gray else "RGB")))
    pixels = converted.reshape(*converted.shape[:2], -1).astype(np.float32)
    alpha = converted[..., -1].copy() if has_alpha else None
    pixels = pixels[..., :-1] if has_alpha else pixels
    return Photo(pixels, alpha, 255.0, ("LA" if gray else "RGBA") if has_alpha else ("L" if gray else "RGB"))


def check_photo(record: AlignmentRecord) -> Path:
    """The record's photo, after checking it still exists, is the same file and is not too large."""
    photo = Path(record.photo)
    if not photo.is_file():
        raise PasteError(f"{record.path}: its photo {photo} no longer exists; align the photo again "
                         "(embed align PHOTO --out DIR)")
    if sha256(photo) != record.photo_sha256:
        raise PasteError(f"{record.path}: its photo {photo} has changed since it was aligned (SHA-256 differs); "
                         "align it again (embed align PHOTO --out DIR)")
    check_photo_size(photo)
    return photo


def _turn(a: tuple, b: tuple, c: tuple) -> float:
    """Twice the signed area of the triangle ``a b c`` (positive when it turns counter-clockwise)."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of ``[N, 2]`` points (Andrew's monotone chain), in order."""
    pts = sorted(map(tuple, points))

    def half(seq: list) -> list:
        out: list = []
        for p in seq:
            while len(out) >= 2 and _turn(out[-2], out[-1], p) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(half(pts) + half(pts[::-1]))


def face_outline(aligned_landmarks: np.ndarray) -> np.ndarray:
    """The hull of the jaw line and the eyebrows, and of the brows raised by half their height above the chin."""
    jaw, brows = aligned_landmarks[0:17], aligned_landmarks[17:27]
    up = brows.mean(axis=0) - aligned_landmarks[8]
    return _hull(np.concatenate([jaw, brows, brows + 0.5 * up]))


def face_mask(record: AlignmentRecord, sigma: float, resolution: int = 256) -> torch.Tensor:
    """The face mask in the aligned square, ``[1, 1, R, R]``: the outline filled, eroded and feathered by a blur.

    ``sigma`` is the blur in square pixels; the mask is 0 from the outline outwards, 1 some 2 sigma inside it.
    """
    scale = resolution / record.output_size
    outline = (face_outline(record.aligned_landmarks) + 0.5) * scale
    canvas = Image.new("L", (resolution, resolution), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in outline], fill=255)
    filled = np.asarray(canvas, dtype=np.float32)[..., None] / 255.0
    blurred = gaussian_blur(filled, max(sigma * scale, 0.5))[..., 0]
    return torch.from_numpy(np.clip(2.0 * blurred - 1.0, 0.0, 1.0))[None, None]


def _smoothstep(x: torch.Tensor) -> torch.Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass
class FaceWarp:
    """The inverse warp of one face, computed once and reused for every result of that face (steady strips).

    ``box`` is where in the photo (left, top, right, bottom), ``grid`` the result's sampling points
    there (``grid_sample``'s frame; ``k`` x ``k`` per photo pixel, averaged, when the face is smaller
    in the photo than in the square), ``mask`` the blend weights ``[h, w]`` (exactly 0 outside) and
    ``base`` the aligned square as ``embed align`` cut it, ``[3, S, S]`` in [0, 1]: only a result's
    difference from it is warped, so an unedited crop gives the photo back exactly and an edit's
    detail is antialiased.
    """

    record: AlignmentRecord
    box: tuple[int, int, int, int]
    grid: torch.Tensor
    k: int
    mask: torch.Tensor
    base: torch.Tensor

    def warp(self, square: torch.Tensor) -> torch.Tensor:
        """A square ``[C, S, S]`` in the photo's frame, ``[C, h, w]``."""
        sampled = F.grid_sample(square[None].float(), self.grid, mode="bicubic", padding_mode="border",
                                align_corners=False)
        return (F.avg_pool2d(sampled, self.k) if self.k > 1 else sampled)[0]

    def change(self, result: torch.Tensor) -> torch.Tensor:
        """What a result ``[3, S, S]`` (0 to 1) changes in the photo, ``[3, h, w]`` (photo's scale 1)."""
        return self.warp(result.float() - self.base)

    @property
    def ring(self) -> torch.Tensor:
        """The mask's soft border ``[h, w]`` (bool), where the pasted face meets the photo."""
        return (self.mask > 0) & (self.mask < 1)


def quad_side(record: AlignmentRecord) -> float:
    """The mean side of the record's quad, in photo pixels (the face's scale in the photo)."""
    quad = record.quad
    return float(np.mean(np.hypot(*(np.roll(quad, -1, axis=0) - quad).T)))


def sampling_grid(record: AlignmentRecord, box: tuple[int, int, int, int], k: int) -> torch.Tensor:
    """``grid_sample`` points ``[1, h k, w k, 2]`` of the square for the photo pixels of ``box``, ``k`` x ``k`` each."""
    offsets = (np.arange(k) + 0.5) / k - 0.5
    ys = (np.arange(box[1], box[3])[:, None] + offsets).reshape(-1)
    xs = (np.arange(box[0], box[2])[:, None] + offsets).reshape(-1)
    points = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)
    uv = apply_homography(record.to_aligned(), points)
    return torch.from_numpy((uv + 0.5) * (2.0 / record.output_size) - 1.0).float()[None]


def original_square(record: AlignmentRecord, upright: Image.Image | None = None) -> torch.Tensor:
    """The square ``embed align`` cut from the record's (unchanged) photo, ``[3, S, S]`` in [0, 1]."""
    upright = upright if upright is not None else read_upright_photo(record.photo)
    crop = align_face(upright, record.landmarks, record.output_size)
    return torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255.0).permute(2, 0, 1)


def face_warp(record: AlignmentRecord, mask: MaskKind = "face", feather: float | None = None,
              upright: Image.Image | None = None) -> FaceWarp:
    """The inverse warp and blend mask of a record's face; ``feather`` in photo pixels (default 4% of the crop).

    ``upright`` is the record's photo as ``embed align`` read it (read again when not given).
    """
    if mask not in ("face", "square"):
        raise ValueError(f"mask must be 'face' or 'square', got {mask!r}")
    side, size = quad_side(record), record.output_size
    feather = max(0.04 * side if feather is None else float(feather), 1e-3)
    width, height = record.photo_size
    lo, hi = np.floor(record.quad.min(axis=0)).astype(int), np.ceil(record.quad.max(axis=0)).astype(int) + 1
    box = (max(lo[0], 0), max(lo[1], 0), min(hi[0], width), min(hi[1], height))
    if box[0] >= box[2] or box[1] >= box[3]:
        raise PasteError(f"{record.path}: the face lies outside its {width}×{height} photo")
    centres = sampling_grid(record, box, 1)
    uv = (centres[0].double().numpy() + 1.0) * (size / 2.0) - 0.5
    edge = np.minimum(uv + 0.5, size - 0.5 - uv).min(axis=-1) * (side / size)   # photo pixels inside the square
    weights = _smoothstep(torch.from_numpy(edge / feather).float())
    if mask == "face":
        inside = F.grid_sample(face_mask(record, feather * size / side / 2), centres, mode="bilinear",
                               padding_mode="zeros", align_corners=False)[0, 0]
        weights = weights * _smoothstep(inside)
    weights[weights < 1e-4] = 0.0
    k = 1 if side >= size / 1.25 else min(int(np.ceil(size / side)), 6)
    grid = centres if k == 1 else sampling_grid(record, box, k)
    return FaceWarp(record, box, grid, k, weights, original_square(record, upright))


def blend(photo: Photo, warp: FaceWarp, result: torch.Tensor, match_colour: bool = MATCH_COLOUR) -> None:
    """Blend one result square ``[3, S, S]`` (0 to 1) into ``photo`` in place, through the warp's mask."""
    left, top, right, bottom = warp.box
    region = torch.from_numpy(photo.pixels[top:bottom, left:right]).permute(2, 0, 1)
    change = warp.change(result) * photo.full
    if region.shape[0] == 1:
        change = (change * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
    face = (region + change).clamp(0.0, photo.full)
    if match_colour and bool(warp.ring.any()):
        face = face + (region - face)[:, warp.ring].mean(dim=1)[:, None, None]
    m = warp.mask
    mixed = torch.where(m > 0, region + m * (face - region), region)
    photo.pixels[top:bottom, left:right] = mixed.permute(1, 2, 0).numpy()


def read_result(path: Path, generators: dict | None = None) -> torch.Tensor:
    """A result as ``[3, S, S]`` in [0, 1]: an image file, or a latents file rendered as it was fitted."""
    if path.suffix in (".pt", ".npz"):
        from embedding.checkpoints import load_generator
        from embedding.latents import Latents

        latents = Latents.load(path)
        cache = {} if generators is None else generators
        if latents.source not in cache:
            latents.check_generator_file(latents.source)
            cache[latents.source] = load_generator(latents.source).eval()
        return ((latents.render(cache[latents.source])[0].float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
    planes, full, _ = decode_image(path)
    rgb = torch.from_numpy(np.stack([np.asarray(p, dtype=np.float32) for p in planes])) / full
    return rgb.expand(3, -1, -1).clamp(0.0, 1.0)


def _matches(record_stem: str, name: str) -> bool:
    return name == record_stem or (name.startswith(record_stem) and name[len(record_stem)] in _SEPARATORS)


def _run_inputs(result: Path) -> list[Path]:
    """The folders of the inputs of the run a result belongs to (``<run>/latents|images/<stem>``)."""
    config = result.parent.parent / "config.yaml"
    if result.parent.name not in ("latents", "images", "pasted") or not config.is_file():
        return []
    try:
        images = (yaml.safe_load(config.read_text()) or {}).get("data", {}).get("images")
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    entries = [images] if isinstance(images, str) else list(images or [])
    folders = []
    for entry in map(Path, entries):
        folder = entry if entry.is_dir() else entry.parent
        folders.append(folder if folder.is_absolute() else Path(os.getcwd()) / folder)
    return folders


def _names(result: Path) -> list[str]:
    """The names a result may be known by: its stem, the stem its latents file records, its folder's name."""
    names = [result.stem]
    if result.suffix == ".pt":
        try:
            stem = torch.load(result, map_location="cpu", weights_only=True).get("metadata", {}).get("stem")
        except Exception:  # an unreadable file is reported when it is rendered
            stem = None
        names += [stem] if isinstance(stem, str) else []
    return names + [result.parent.name]


def find_record(result: str | Path, folders: Sequence[str | Path] = ()) -> Path:
    """The alignment record of a result: ``<stem>.json`` (or the longest record stem it starts with) in its folder,
    its run's input folders or ``folders``."""
    result = Path(result)
    names = _names(result)
    for folder in [result.parent, *map(Path, folders), *_run_inputs(result)]:
        stems = [p.stem for p in folder.glob("*.json")] if folder.is_dir() else []
        for name in names:
            found = [s for s in stems if _matches(s, name)]
            if found:
                return folder / f"{max(found, key=len)}.json"
    looked = ", ".join(str(f) for f in [result.parent, *map(Path, folders), *_run_inputs(result)])
    raise PasteError(f"{result}: no alignment record found for it (looked for {result.stem}.json in {looked}); "
                     "make one with: embed align PHOTO --out DIR, then fit or edit that folder's faces "
                     "(or give --record / --records)")


@dataclass
class PasteReport:
    """What :func:`paste` did: the photos written and the results that could not be pasted, ``(result, reason)``."""

    written: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _load_pair(result: Path, record: Path | None, folders: Sequence[Path],
               generators: dict) -> tuple[AlignmentRecord, torch.Tensor]:
    """A result with its alignment record, checked against each other and against the photo."""
    if not result.is_file():
        raise PasteError(f"{result}: no such result file")
    aligned = AlignmentRecord.load(record or find_record(result, folders))
    check_photo(aligned)
    image = read_result(result, generators)
    if tuple(image.shape[-2:]) != (aligned.output_size, aligned.output_size):
        raise PasteError(f"{result}: a {image.shape[-1]}×{image.shape[-2]} result, but its record {aligned.path} "
                         f"is of a {aligned.output_size}² alignment; paste a result of that size "
                         f"(or align again with --size {image.shape[-1]})")
    return aligned, image


def _paste_photo(pairs: Sequence[tuple[AlignmentRecord, torch.Tensor]], mask: MaskKind = "face",
                 feather: float | None = None, match_colour: bool = MATCH_COLOUR) -> Image.Image:
    """One photo with every ``(record, result)`` face of it pasted (all records of the same photo, each already
    checked against it by :func:`check_photo`)."""
    path = Path(pairs[0][0].photo)
    photo, upright = read_photo(path), read_upright_photo(path)
    for record, result in pairs:
        blend(photo, face_warp(_same_size(record, photo), mask, feather, upright), result, match_colour)
    return photo.image()


def _same_size(record: AlignmentRecord, photo: Photo) -> AlignmentRecord:
    """``record``, after checking it was made on a photo of ``photo``'s (upright) size."""
    size = photo.pixels.shape[1], photo.pixels.shape[0]
    if tuple(record.photo_size) != size:
        raise PasteError(f"{record.path}: recorded for a {record.photo_size[0]}×{record.photo_size[1]} photo, "
                         f"but {record.photo} is {size[0]}×{size[1]} upright")
    return record


def paste_frames(source: str | Path, frames: torch.Tensor, paths: Sequence[str | Path], mask: MaskKind = "face",
                 feather: float | None = None, match_colour: bool = MATCH_COLOUR) -> list[Path]:
    """Each frame ``[N, 3, S, S]`` (in [-1, 1]) of one face pasted into its photo, ``paths[i]``; ``source`` (the
    aligned input or its latents file) leads to the record. The warp is computed once, so a strip stays steady."""
    record = AlignmentRecord.load(find_record(source))
    if tuple(frames.shape[-2:]) != (record.output_size, record.output_size):
        raise PasteError(f"{source}: its frames are {frames.shape[-1]}×{frames.shape[-2]}, but its record "
                         f"{record.path} is of a {record.output_size}² alignment")
    photo_path = check_photo(record)
    photo, info = read_photo(photo_path), read_photo_info(photo_path)
    warp = face_warp(_same_size(record, photo), mask, feather, read_upright_photo(photo_path))
    written = []
    for frame, path in zip(frames, paths, strict=True):
        copy = Photo(photo.pixels.copy(), photo.alpha, photo.full, photo.mode)
        blend(copy, warp, ((frame.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0), match_colour)
        save_photo(copy.image(), Path(path), info)
        written.append(Path(path))
    return written


def save_photo(image: Image.Image, path: Path, info: dict | None = None) -> None:
    """Write a pasted photo as PNG, atomically."""
    atomic_write(Path(path), lambda f: image.save(f, format="PNG", **(info or {})))


def paste(results: Sequence[str | Path], out: str | Path, records: Sequence[str | Path] | None = None,
          records_dir: str | Path | Sequence[str | Path] | None = None, mask: MaskKind = "face",
          feather: float | None = None, match_colour: bool = MATCH_COLOUR) -> PasteReport:
    """Paste every result into its photo, ``<out>/<photo stem>.png``; a result that fails is reported, not fatal.

    ``records`` gives each result's record outright (same order); else each is looked up (see :func:`find_record`)
    beside the result, in its run's input folders and in ``records_dir``.
    """
    results = [Path(r) for r in results]
    if records is not None and len(records) != len(results):
        raise ValueError(f"{len(records)} records given for {len(results)} results: give one per result, in order")
    single = isinstance(records_dir, str | os.PathLike)
    folders = [Path(records_dir)] if single else [Path(f) for f in records_dir or []]
    report, photos, generators = PasteReport(), {}, {}
    for k, result in enumerate(results):
        try:
            record, image = _load_pair(result, Path(records[k]) if records else None, folders, generators)
        except (PasteError, ValueError, OSError) as e:
            report.failures.append((str(result), str(e)))
            continue
        faces = photos.setdefault(Path(record.photo), {})
        if record.face in faces:
            report.failures.append((str(result), f"face {record.face} of {record.photo} is already pasted from "
                                                 f"{faces[record.face][0]}; paste it in a separate call"))
            continue
        faces[record.face] = (result, record, image)
    names = unique_stems(list(photos))
    for (photo, faces), name in zip(photos.items(), names, strict=True):
        try:
            image = _paste_photo([(r, im) for _, r, im in faces.values()], mask, feather, match_colour)
            target = Path(out) / f"{name}.png"
            save_photo(image, target, read_photo_info(photo))
            report.written.append(target)
        except (PasteError, ValueError, OSError) as e:
            report.failures += [(str(result), str(e)) for result, _, _ in faces.values()]
    return report


def read_photo_info(path: Path) -> dict:
    """What of a photo's file info a pasted copy keeps (its colour profile)."""
    with Image.open(path) as im:
        return {"icc_profile": im.info["icc_profile"]} if "icc_profile" in im.info else {}
