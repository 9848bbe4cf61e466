"""``embed align``: FFHQ-align the faces of in-the-wild photos.

    embed align photos/ more/*.jpg --out aligned/ --size 1024 --preview aligned_sheet.png

Each face found becomes ``<out>/<stem>.png`` (``<stem>_0.png``, ``<stem>_1.png``, ... when a
photo has several, best detection first), with ``<stem>.json`` beside it: how the crop was made
(the photo's path, SHA-256 and size, the FFHQ quad, landmarks), which ``embed paste`` inverts.
Photos are read upright (EXIF orientation applied). Photos with no face, or that can't be read, are
reported and skipped; the exit status is non-zero only when no face at all was aligned.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image, ImageDraw, UnidentifiedImageError

from embedding.faces.align import Face, align_with_record, find_faces, read_upright_photo
from embedding.files import atomic_write, sha256
from embedding.images import resolve_images, unique_stems
from embedding.progress import progress

THUMB = 128


def _save_png(image: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def _thumbnail(photo: Image.Image, faces: list[Face]) -> Image.Image:
    """The photo shrunk to fit ``THUMB``, with detector boxes and landmarks drawn."""
    scale = THUMB / max(photo.size)
    thumb = photo.convert("RGB").resize((max(round(photo.width * scale), 1), max(round(photo.height * scale), 1)))
    draw = ImageDraw.Draw(thumb)
    for face in faces:
        draw.rectangle([v * scale for v in face.detection.box], outline=(0, 255, 0))
        for x, y in face.landmarks * scale:
            draw.point((x, y), fill=(255, 0, 0))
    if not faces:
        draw.line([(0, 0), thumb.size], fill=(255, 0, 0), width=2)
        draw.line([(0, thumb.height), (thumb.width, 0)], fill=(255, 0, 0), width=2)
    return thumb


def preview_sheet(rows: list[tuple[Image.Image, list[Image.Image]]]) -> Image.Image:
    """One row per photo: the annotated photo, then its aligned faces, each in a ``THUMB`` cell."""
    columns = max(1 + len(aligned) for _, aligned in rows)
    sheet = Image.new("RGB", (columns * THUMB, len(rows) * THUMB), (255, 255, 255))
    for r, (thumb, aligned) in enumerate(rows):
        sheet.paste(thumb, ((THUMB - thumb.width) // 2, r * THUMB + (THUMB - thumb.height) // 2))
        for c, face in enumerate(aligned, start=1):
            sheet.paste(face.resize((THUMB, THUMB), Image.LANCZOS), (c * THUMB, r * THUMB))
    return sheet


def _align_and_record(photo: Image.Image, faces: list[Face], path: Path, out: Path, stem: str,
                      size: int) -> list[Image.Image]:
    """Align each face, writing ``<stem>[_k].png`` and, beside it, its record ``<stem>[_k].json``."""
    digest = sha256(path)
    aligned = []
    for k, face in enumerate(faces):
        image, record = align_with_record(photo, face, size, path, digest, k)
        name = f"{stem}_{k}" if len(faces) > 1 else stem
        _save_png(image, out / f"{name}.png")
        record.save(out / f"{name}.json")
        aligned.append(image)
    return aligned


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embed align", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="photos: files, folders or glob patterns")
    parser.add_argument("--out", required=True, type=Path, help="folder for the aligned faces")
    parser.add_argument("--size", type=int, default=1024, help="output size in pixels (default 1024)")
    parser.add_argument("--preview", type=Path, help="also write a sheet of photos and their aligned faces")
    parser.add_argument("--detector-size", type=int, default=416,
                        help="detector input size, a multiple of 32; larger finds smaller faces (default 416)")
    parser.add_argument("--threshold", type=float, default=0.5, help="detector score threshold (default 0.5)")
    parser.add_argument("--max-faces", type=int, default=None, help="align at most this many faces per photo")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``embed align``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preview and args.out.resolve() in args.preview.resolve().parents:
        parser.error(f"--preview {args.preview} is inside --out {args.out}: embed fit and embed encode would take "
                     "the sheet for a face; write it elsewhere (e.g. --preview aligned_sheet.png)")
    paths, missing = resolve_images(args.inputs)  # entries that match nothing are reported below
    skipped = [f"{entry}: {reason}" for entry, reason in missing]
    aligned_count = 0
    rows = []
    for path, stem in progress(list(zip(paths, unique_stems(paths), strict=True)), "align", "photo"):
        try:
            photo = read_upright_photo(path)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            skipped.append(f"{path}: can't be read ({err})")
            continue
        faces = find_faces(photo, args.detector_size, args.threshold)[: args.max_faces]
        if not faces:
            skipped.append(f"{path}: no face found")
        aligned = _align_and_record(photo, faces, path, args.out, stem, args.size)
        aligned_count += len(aligned)
        if args.preview:
            rows.append((_thumbnail(photo, faces), aligned))
    if args.preview and rows:
        _save_png(preview_sheet(rows), args.preview)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"aligned {aligned_count} face(s) from {len(paths)} photo(s) into {args.out}", file=sys.stderr)
    return 0 if aligned_count else 1


if __name__ == "__main__":
    sys.exit(main())
