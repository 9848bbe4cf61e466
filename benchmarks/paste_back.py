"""Pasting aligned faces back into their photos: round-trip exactness, reconstructions' seams, time per face.

    python benchmarks/paste_back.py                          # round trips, timings
    python docs/paste_back.py && python benchmarks/paste_back.py --fit runs/paste_back/fit   # + reconstructions

Round trip: CelebA-HQ photos (``../shared/data/stargan2_celebahq``, not in the repository) are
placed, scaled and turned by a known transform, off-centre on a blurred 1600×1200 canvas; the
landmarks found once in each photo are carried by the same transform, the face aligned at 1024²
with its record, and the crop pasted back unedited. Outside the mask the canvas must be unchanged
(0 levels), inside too (paste warps only a result's change). ``warp`` is the crop itself warped
back by the library's inverse (averaged over each pixel's footprint when the face shrinks) and
``point`` the same sampled at pixel centres only: the inverse's exactness, above 40 dB PSNR.

Reconstructions (``--fit``, a run folder of faces aligned by ``embed align``): each latents file is
rendered and pasted (all faces of a photo together) with each mask, with and without colour
matching: PSNR of the whole photo and of the mask's region, and the seam: the mean absolute
gradient across the mask border (luminance, along the mask's own gradient, in its soft band), in
the pasted photo against the same band of the original.

Timings: one face pasted into the 2000×1200 group photo and into a 12-megapixel photo (warp, mask
and blend; and the whole ``paste`` call with reading, checking and writing). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from embedding.faces.align import AlignmentRecord, Face, align_with_record, find_faces
from embedding.faces.paste import (
    FaceWarp,
    blend,
    face_warp,
    find_record,
    paste,
    read_photo,
    read_result,
    sampling_grid,
)
from embedding.files import sha256

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "stargan2_celebahq"
HELD_OUT = ("ref/male/012712", "ref/male/036367", "ref/female/015248", "src/male/196930")
# (side of the placed 1024² photo, turn in degrees, centre as fractions of the canvas)
VARIANTS = ((420, -25.0, (0.3, 0.4)), (700, 12.0, (0.62, 0.55)), (1000, 35.0, (0.45, 0.5)), (300, 0.0, (0.8, 0.3)))
CANVAS = (1600, 1200)


def place(photo: Image.Image, side: int, turn: float, centre: tuple[float, float],
          canvas: tuple[int, int]) -> tuple[Image.Image, np.ndarray]:
    """``photo`` resized to ``side`` and turned about its centre onto a blurred canvas; and the 2 x 3 map of pixel
    centres (photo to canvas) that carries landmarks along."""
    small = photo.resize((side, side), Image.LANCZOS)
    a = np.radians(turn)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    target = np.array([centre[0] * canvas[0], centre[1] * canvas[1]])
    forward = np.hstack([rotation, (target - rotation @ [side / 2, side / 2])[:, None]])   # edge frame
    inverse = np.linalg.inv(np.vstack([forward, [0, 0, 1]]))[:2]
    placed = small.transform(canvas, Image.AFFINE, tuple(inverse.flatten()), Image.BICUBIC)
    cover = Image.new("L", small.size, 255).transform(canvas, Image.AFFINE, tuple(inverse.flatten()), Image.BILINEAR)
    background = photo.resize(canvas).filter(ImageFilter.GaussianBlur(40))
    background.paste(placed, (0, 0), cover)
    linear = forward[:, :2] * (side / photo.width)   # pixel centres: (c + 0.5) * s in the resized photo, less 0.5
    return background, np.hstack([linear, (linear @ [0.5, 0.5] + forward[:, 2] - 0.5)[:, None]])


def carried(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def full_mask(warp: FaceWarp) -> np.ndarray:
    """A warp's blend mask over its whole photo."""
    record = warp.record
    weights = np.zeros(record.photo_size[::-1], dtype=np.float32)
    left, top, right, bottom = warp.box
    weights[top:bottom, left:right] = warp.mask.numpy()
    return weights


def round_trips(work: Path) -> list[dict]:
    """Every held-out photo in every placement: aligned, pasted back unedited, compared with the canvas."""
    rows = []
    for name in HELD_OUT:
        photo = Image.open(DATA / f"{name}.jpg").convert("RGB")
        faces = find_faces(photo)
        for side, turn, centre in VARIANTS:
            canvas, affine = place(photo, side, turn, centre, CANVAS)
            path = work / f"{Path(name).name}_{side}.png"
            canvas.save(path)
            face = Face(faces[0].detection, carried(faces[0].landmarks, affine))
            crop, record = align_with_record(canvas, face, 1024, path, sha256(path))
            record.path = path
            before = np.asarray(canvas)
            for mask in ("face", "square"):
                warp = face_warp(record, mask, upright=canvas)
                pasted = read_photo(path)
                blend(pasted, warp, torch.from_numpy(np.asarray(crop, np.float32) / 255).permute(2, 0, 1))
                after = np.asarray(pasted.image())
                weights = full_mask(warp)
                left, top, right, bottom = warp.box
                alone = np.rint(warp.warp(warp.base).clamp(0, 1).permute(1, 2, 0).numpy() * 255)
                point = F.grid_sample(warp.base[None], sampling_grid(record, warp.box, 1), mode="bicubic",
                                      align_corners=False)[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255
                inside = warp.mask.numpy() > 0
                rows.append({"photo": Path(name).name, "face": f"{np.hypot(*(record.quad[3] - record.quad[0])):.0f}",
                             "turn": turn, "mask": mask,
                             "outside": int(np.abs(before[weights == 0].astype(int) - after[weights == 0]).max()),
                             "inside": psnr(before[weights > 0], after[weights > 0]),
                             "warp": psnr(before[top:bottom, left:right][inside], alone[inside]),
                             "point": psnr(before[top:bottom, left:right][inside], np.rint(point[inside]))})
    return rows


def seam(photo: np.ndarray, weights: np.ndarray) -> float:
    """Mean absolute luminance gradient across the mask's soft band, along the mask's own gradient."""
    lum = photo[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]
    gy, gx = np.gradient(lum)
    my, mx = np.gradient(weights.astype(np.float64))
    norm = np.hypot(mx, my)
    band = (weights > 0.05) & (weights < 0.95) & (norm > 0)
    return float(np.mean(np.abs(gx[band] * mx[band] + gy[band] * my[band]) / norm[band]))


def reconstructions(fit: Path, out: Path) -> list[dict]:
    """Every latents file of ``fit`` pasted with each mask and colour option, against the original photo."""
    latents = sorted((fit / "latents").glob("*.pt"))
    records = [AlignmentRecord.load(find_record(p)) for p in latents]
    rows = []
    for mask in ("face", "square"):
        for match in (False, True):
            target = out / f"{mask}_{'match' if match else 'plain'}"
            report = paste(latents, target, mask=mask, match_colour=match)
            for written in report.written:
                records_of = [r for r in records if Path(r.photo).stem == written.stem]
                original = np.asarray(Image.open(records_of[0].photo).convert("RGB"))
                after = np.asarray(Image.open(written).convert("RGB"))
                weights = np.maximum.reduce([full_mask(face_warp(r, mask)) for r in records_of])
                rows.append({"photo": written.stem, "faces": len(records_of), "mask": mask, "match": match,
                             "whole": psnr(original, after), "region": psnr(original[weights > 0], after[weights > 0]),
                             "seam": seam(after, weights), "seam_original": seam(original, weights)})
    return rows


def timings(work: Path) -> list[dict]:
    """Seconds to paste one face into the group photo and into a 12-megapixel one (median of 3)."""
    photo = Image.open(DATA / f"{HELD_OUT[0]}.jpg").convert("RGB")
    faces = find_faces(photo)
    rows = []
    for label, canvas_size, side in (("2000×1200", (2000, 1200), 600), ("12 MP (4000×3000)", (4000, 3000), 1400)):
        canvas, affine = place(photo, side, 10.0, (0.5, 0.5), canvas_size)
        path = work / f"timing_{canvas_size[0]}.jpg"
        canvas.save(path, quality=92)
        crop, record = align_with_record(canvas, Face(faces[0].detection, carried(faces[0].landmarks, affine)),
                                         1024, path, sha256(path))
        crop_path, record_path = work / f"timing_{canvas_size[0]}_face.png", work / f"timing_{canvas_size[0]}_face.json"
        crop.save(crop_path)
        record.save(record_path)
        result = read_result(crop_path)
        for mask in ("face", "square"):
            pasted, warp_times, call_times = read_photo(path), [], []
            for _ in range(3):
                start = time.perf_counter()
                blend(pasted, face_warp(record, mask), result)
                warp_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                paste([crop_path], work / "timing_out", mask=mask)
                call_times.append(time.perf_counter() - start)
            rows.append({"photo": label, "face": side, "mask": mask, "warp": float(np.median(warp_times)),
                         "call": float(np.median(call_times))})
    return rows


def table(rows: list[dict], columns: dict[str, str]) -> str:
    """A Markdown table of ``rows`` with ``columns`` (key: format spec)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format(row[k], f) for k, f in columns.items()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fit", type=Path, default=None,
                        help="a run folder of faces aligned by embed align (docs/paste_back.py's runs/paste_back/fit)")
    parser.add_argument("--skip-round-trips", action="store_true")
    parser.add_argument("--skip-timings", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_round_trips:
            rows = round_trips(work)
            print("### Round trip (aligned crop at 1024², pasted back unedited)\n")
            print(table(rows, {"photo": "", "face": "", "turn": "g", "mask": "", "outside": "d", "inside": ".1f",
                               "warp": ".1f", "point": ".1f"}))
            print(f"\nworst: outside {max(r['outside'] for r in rows)} levels, pasted inside "
                  f"{min(r['inside'] for r in rows):.1f} dB, the crop warped alone {min(r['warp'] for r in rows):.1f} "
                  f"dB (point-sampled {min(r['point'] for r in rows):.1f} dB)\n")
        if args.fit is not None:
            print("### Reconstructions pasted back (PSNR in dB; seam: mean |gradient| across the mask border)\n")
            print(table(reconstructions(args.fit, work / "pasted"),
                        {"photo": "", "faces": "d", "mask": "", "match": "", "whole": ".2f", "region": ".2f",
                         "seam": ".2f", "seam_original": ".2f"}))
            print()
        if not args.skip_timings:
            print("### Time per face (seconds, median of 3)\n")
            print(table(timings(work), {"photo": "", "face": "d", "mask": "", "warp": ".3f", "call": ".2f"}))


if __name__ == "__main__":
    main()
