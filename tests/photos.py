"""The committed test photos: 12 faces rendered by the default generator in CelebA's 178×218 layout.

``tests/fixtures/make_photos.py`` made them; nothing outside the repository is read.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PHOTOS = FIXTURES / "photos"
FACE_BOX = [25, 57, 153, 185]  # the face square of a 178×218 CelebA-layout photo
MEAN_FACE = FIXTURES / "celeba_mean_face.png"  # average of 64 real CelebA face squares at 64²


def photos(n: int) -> list[Path]:
    """The first ``n`` committed photos, sorted by name."""
    found = sorted(PHOTOS.glob("*.jpg"))
    if len(found) < n:
        raise ValueError(f"only {len(found)} photos in {PHOTOS}, {n} asked for")
    return found[:n]
