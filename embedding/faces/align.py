"""FFHQ alignment of in-the-wild photos: detect faces, find 68 landmarks, crop the oriented square
that FFHQ's ``recreate_aligned_images`` derives from the eyes and mouth (shrink, crop, reflect-pad
with a blurred border, quad transform, antialiased resize), at any output size."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from embedding.faces.detector import Detection, DetectorNet, detect_faces
from embedding.faces.landmarks import LandmarkNet, detect_landmarks
from embedding.faces.layers import shared_net
from embedding.files import atomic_write
from embedding.images import ImageReadError, on_white, open_image

RECORD_VERSION = 1
MAX_PHOTO_PIXELS = 80_000_000   # larger photos are refused by embed align and embed paste
GRAY16_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})   # PIL's modes of 16-bit gray photos


@dataclass
class Face:
    """A face found in a photo: detector box and score, and 68 landmarks ``[68, 2]`` in pixels."""

    detection: Detection
    landmarks: np.ndarray


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image as ``[3, H, W]`` float RGB 0-255."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1)


def _detect(pixels: torch.Tensor, input_size: int, score_threshold: float) -> list[Detection]:
    """Detections in image pixels; a photo where none is found is searched again with a border of
    half its size all round, since the detector misses faces that fill the frame."""
    found = detect_faces(shared_net(DetectorNet), pixels, input_size, score_threshold)
    if found:
        return found
    margin = max(pixels.shape[-2:]) // 2
    padded = F.pad(pixels, (margin, margin, margin, margin), mode="replicate")
    found = detect_faces(shared_net(DetectorNet), padded, input_size, score_threshold)
    return [Detection(tuple(v - margin for v in det.box), det.score) for det in found]


def check_photo_size(path: str | Path) -> None:
    """Refuse a photo of more than ``MAX_PHOTO_PIXELS`` pixels, read from its header; the message gives both numbers."""
    try:
        with Image.open(path) as im:
            width, height = im.size
    except Image.DecompressionBombError as e:
        raise ImageReadError(path, f"over the limit of {MAX_PHOTO_PIXELS:,} pixels "
                                   f"(embedding.faces.align.MAX_PHOTO_PIXELS): {e}") from e
    if width * height > MAX_PHOTO_PIXELS:
        raise ImageReadError(path, f"{width}×{height} = {width * height:,} pixels, over the limit of "
                                   f"{MAX_PHOTO_PIXELS:,} (embedding.faces.align.MAX_PHOTO_PIXELS)")


def read_upright_photo(path: str | Path) -> Image.Image:
    """A photo as 8-bit RGB, upright per its EXIF orientation (16-bit scaled, alpha over white); huge ones refused."""
    check_photo_size(path)
    im = open_image(path)
    if im.mode in GRAY16_MODES:
        gray = np.rint(np.asarray(im.convert("I"), dtype=np.float64) / 257.0)
        return Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), "L").convert("RGB")
    if "A" in im.getbands() or (im.mode == "P" and "transparency" in im.info):
        return on_white(im)
    return im.convert("RGB")


@torch.no_grad()
def find_faces(image: Image.Image, input_size: int = 416, score_threshold: float = 0.5) -> list[Face]:
    """Detect the faces of a photo (best first) and locate 68 landmarks in each detector box."""
    pixels = to_tensor(image)
    height, width = pixels.shape[-2:]
    faces = []
    for det in _detect(pixels, input_size, score_threshold):
        left, top = max(int(det.box[0]), 0), max(int(det.box[1]), 0)
        right, bottom = min(int(np.ceil(det.box[2])), width), min(int(np.ceil(det.box[3])), height)
        if right - left < 8 or bottom - top < 8:
            continue
        crop = pixels[None, :, top:bottom, left:right]
        points = detect_landmarks(shared_net(LandmarkNet), crop)[0] + torch.tensor([left, top])
        faces.append(Face(det, points.numpy().astype(np.float64)))
    return faces


def ffhq_quad(landmarks: np.ndarray) -> np.ndarray:
    """FFHQ's oriented crop square ``[4, 2]`` (corners: top-left, bottom-left, bottom-right,
    top-right) from 68 dlib-ordered landmarks."""
    eye_left = landmarks[36:42].mean(axis=0)
    eye_right = landmarks[42:48].mean(axis=0)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (landmarks[48] + landmarks[54]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _blur_last_axis(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve the last axis with a symmetric ``kernel`` (edges replicated), through the FFT."""
    r = kernel.numel() // 2
    x = torch.cat([x[..., :1].expand(*x.shape[:-1], r), x, x[..., -1:].expand(*x.shape[:-1], r)], dim=-1)
    n = x.shape[-1] + kernel.numel() - 1
    full = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(kernel, n), n)
    return full[..., 2 * r : x.shape[-1]]


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an ``[H, W, C]`` float image (separable, truncated at 4 sigma, edges replicated)."""
    radius = max(int(4.0 * sigma + 0.5), 1)
    kernel = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    kernel /= kernel.sum()
    x = torch.from_numpy(image).permute(2, 0, 1)
    x = _blur_last_axis(_blur_last_axis(x, kernel).transpose(1, 2), kernel).transpose(1, 2)
    return x.permute(1, 2, 0).numpy()


def align_face(image: Image.Image, landmarks: np.ndarray, output_size: int = 1024,
               transform_size: int | None = None) -> Image.Image:
    """FFHQ-align one face of ``image`` given its 68 landmarks; returns an ``output_size`` square.

    Follows FFHQ's recreate script step by step; ``transform_size`` (default 4 x output, as
    FFHQ's 4096 for 1024) is the supersampled size of the quad transform.
    """
    return align_face_with_quad(image, landmarks, output_size, transform_size)[0]


def align_face_with_quad(image: Image.Image, landmarks: np.ndarray, output_size: int = 1024,
                         transform_size: int | None = None) -> tuple[Image.Image, np.ndarray]:
    """:func:`align_face`'s square and the quad ``[4, 2]`` it was sampled from, in ``image``'s pixels.

    The quad's corners (top-left, bottom-left, bottom-right, top-right; pixel centres at integers,
    as the landmarks) are where the square's outer corners come from, the shrink's exact per-axis
    scale included, so the map between the two frames is exact and can be inverted.
    """
    transform_size = transform_size or 4 * output_size
    img = image.convert("RGB")
    quad = ffhq_quad(landmarks)
    qsize = np.hypot(*(quad[3] - quad[0]))
    scale, offset = np.ones(2), np.zeros(2)

    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        size = (int(np.rint(img.size[0] / shrink)), int(np.rint(img.size[1] / shrink)))
        scale = np.array(img.size, dtype=np.float64) / size
        img = img.resize(size, Image.LANCZOS)
        quad /= shrink
        qsize /= shrink

    border = max(int(np.rint(qsize * 0.1)), 3)
    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0),
            min(hi[0] + border, img.size[0]), min(hi[1] + border, img.size[1]))
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]
        offset += crop[0:2]

    lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
    pad = np.array([max(-lo[0] + border, 0), max(-lo[1] + border, 0),
                    max(hi[0] - img.size[0] + border, 0), max(hi[1] - img.size[1] + border, 0)])
    if pad.max() > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = arr.shape
        y, x, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
                          1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))
        arr += (gaussian_blur(arr, qsize * 0.02) - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad += pad[:2]
        offset -= pad[:2]

    img = img.transform((transform_size, transform_size), Image.QUAD, tuple((quad + 0.5).flatten()), Image.BILINEAR)
    if output_size < transform_size:
        img = img.resize((output_size, output_size), Image.LANCZOS)
    return img, (quad + offset + 0.5) * scale - 0.5


def align_photo(image: Image.Image, output_size: int = 1024, input_size: int = 416,
                score_threshold: float = 0.5) -> list[Image.Image]:
    """Every face of a photo, FFHQ-aligned at ``output_size`` (best detection first; may be empty)."""
    return [align_face(image, face.landmarks, output_size) for face in find_faces(image, input_size, score_threshold)]


def square_to_quad(quad: np.ndarray, size: int) -> np.ndarray:
    """The 3 x 3 perspective map from an aligned square's pixels (``size``, pixel centres at integers) to the photo's.

    Exact for :func:`align_face_with_quad`'s quad: the square's outer corners go to the quad's corners.
    """
    corners = np.array([[0.0, 0.0], [0.0, size], [size, size], [size, 0.0]]) - 0.5
    rows, rhs = [], []
    for (u, v), (x, y) in zip(corners, np.asarray(quad, dtype=np.float64), strict=True):
        rows += [[u, v, 1, 0, 0, 0, -u * x, -v * x], [0, 0, 0, u, v, 1, -u * y, -v * y]]
        rhs += [x, y]
    return np.append(np.linalg.solve(np.array(rows), np.array(rhs)), 1.0).reshape(3, 3)


def apply_homography(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` ``[..., 2]`` mapped through the 3 x 3 perspective ``matrix``."""
    points = np.asarray(points, dtype=np.float64)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    return mapped[..., :2] / mapped[..., 2:]


@dataclass
class AlignmentRecord:
    """How one aligned face was cut from its photo: ``<stem>.json`` beside ``<stem>.png``, written by ``embed align``.

    Coordinates are pixels of the upright photo (EXIF orientation applied) and of the aligned
    square, pixel centres at integers; ``quad`` holds the photo points the square's outer
    corners come from (top-left, bottom-left, bottom-right, top-right).
    """

    photo: str
    photo_sha256: str
    photo_size: tuple[int, int]
    quad: np.ndarray
    output_size: int
    landmarks: np.ndarray
    aligned_landmarks: np.ndarray
    score: float
    face: int = 0
    path: Path | None = None

    def to_aligned(self) -> np.ndarray:
        """The 3 x 3 map from the photo's pixels to the aligned square's (the inverse of :func:`square_to_quad`)."""
        return np.linalg.inv(square_to_quad(self.quad, self.output_size))

    def save(self, path: str | Path) -> None:
        """Write the record as JSON, atomically."""
        fields = {"version": RECORD_VERSION, "photo": self.photo, "photo_sha256": self.photo_sha256,
                  "photo_size": list(self.photo_size), "face": self.face, "score": self.score,
                  "output_size": self.output_size, "quad": np.asarray(self.quad).tolist(),
                  "landmarks": np.asarray(self.landmarks).tolist(),
                  "aligned_landmarks": np.asarray(self.aligned_landmarks).tolist()}
        text = json.dumps(fields, indent=1).encode()
        atomic_write(Path(path), lambda f: f.write(text))

    @classmethod
    def load(cls, path: str | Path) -> AlignmentRecord:
        """Read a record written by :meth:`save`; errors name the file."""
        path = Path(path)
        try:
            fields = json.loads(path.read_text())
            quad = np.array(fields["quad"], dtype=np.float64).reshape(4, 2)
            return cls(str(fields["photo"]), str(fields["photo_sha256"]), tuple(int(v) for v in fields["photo_size"]),
                       quad, int(fields["output_size"]), np.array(fields["landmarks"], dtype=np.float64),
                       np.array(fields["aligned_landmarks"], dtype=np.float64), float(fields["score"]),
                       int(fields.get("face", 0)), path)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{path}: no such alignment record "
                                    "(make one with: embed align PHOTO --out DIR)") from e
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not an alignment record ({type(e).__name__}: {e})") from e


def align_with_record(image: Image.Image, face: Face, output_size: int, photo: str | Path, photo_sha256: str,
                      index: int = 0) -> tuple[Image.Image, AlignmentRecord]:
    """One face of an upright photo, aligned, and the record of how (``photo`` is the file it was read from)."""
    aligned, quad = align_face_with_quad(image, face.landmarks, output_size)
    record = AlignmentRecord(str(Path(photo).resolve()), photo_sha256, image.size, quad, output_size,
                             face.landmarks, np.zeros_like(face.landmarks), float(face.detection.score), index)
    record.aligned_landmarks = apply_homography(record.to_aligned(), face.landmarks)
    return aligned, record
