"""Training images: the crop box, the name-hashed holdout and the in-memory datamodule."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.training import TrainingImages, is_held_out, read_crop
from tests.photos import FACE_BOX, PHOTOS, photos

R = 16


def test_read_crop_of_the_face_box() -> None:
    x = read_crop(photos(1)[0], FACE_BOX, R)
    assert x.shape == (3, R, R) and x.dtype == torch.uint8
    assert x.float().std() > 10  # a face, not a flat image


def test_default_crop_is_the_centred_square(tmp_path: Path) -> None:
    tall = np.zeros((50, 30, 3), np.uint8)
    tall[10:40] = 255  # the centred 30x30 square is white, the bands above and below black
    Image.fromarray(tall).save(tmp_path / "tall.png")
    assert torch.equal(read_crop(tmp_path / "tall.png", None, R), torch.full((3, R, R), 255, dtype=torch.uint8))

    photo = photos(1)[0]  # 178x218: the centred square is rows 20-198
    assert torch.equal(read_crop(photo, None, R), read_crop(photo, (0, 20, 178, 198), R))


def test_holdout_is_stable_and_about_the_given_fraction() -> None:
    names = [f"{i:06d}.jpg" for i in range(1, 6001)]  # CelebA-style names; only the name counts
    held = [n for n in names if is_held_out(n, 0.05)]
    assert 0.03 * len(names) < len(held) < 0.07 * len(names)
    # The same names on every call and wherever the files lie: only the file name counts.
    assert held == [n for n in names if is_held_out(Path("/elsewhere") / n, 0.05)]
    assert set(held) <= {n for n in names if is_held_out(n, 0.1)}
    assert not any(is_held_out(n, 0.0) for n in names)
    assert all(is_held_out(n, 1.0) for n in names)


def test_datamodule_leaves_out_held_out_files_and_yields_batches_in_range() -> None:
    files = photos(12)
    kept = [p for p in files if not is_held_out(p, 0.5)]
    assert 2 <= len(kept) < len(files)
    dm = TrainingImages([str(p) for p in files], resolution=R, crop=FACE_BOX, hflip=False,
                        holdout_fraction=0.5, batch_size=2)
    dm.setup("fit")
    expected = torch.stack([read_crop(p, FACE_BOX, R) for p in kept])
    assert torch.equal(dm.dataset.images, expected)

    batch = next(iter(dm.train_dataloader()))
    assert batch.shape == (2, 3, R, R) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1 and batch.min() < 0 < batch.max()


def test_hflip_mirrors_some_images() -> None:
    dm = TrainingImages([str(photos(1)[0])], resolution=R, crop=FACE_BOX, hflip=True, batch_size=1)
    dm.setup("fit")
    image = dm.dataset.images[0].float() / 127.5 - 1
    torch.manual_seed(0)
    views = [dm.dataset[0] for _ in range(20)]
    assert all(torch.equal(v, image) or torch.equal(v, image.flip(-1)) for v in views)
    assert any(torch.equal(v, image.flip(-1)) for v in views) and any(torch.equal(v, image) for v in views)


def test_corrupt_file_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for photo in photos(3):
        shutil.copy(photo, tmp_path / photo.name)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    dm = TrainingImages(str(tmp_path), resolution=R, batch_size=2)
    with caplog.at_level(logging.WARNING, logger="datamodules.training"):
        dm.setup("fit")
    assert len(dm.dataset) == 3
    assert any("broken.jpg" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_no_usable_image_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="usable training image"):
        TrainingImages(str(tmp_path), resolution=R).setup("fit")
    name = photos(1)[0].name
    with pytest.raises(ValueError, match="usable training image"):  # every file held out
        TrainingImages(str(PHOTOS / name), resolution=R, holdout_fraction=1.0).setup("fit")
    with pytest.raises(ValueError, match="fewer than one batch"):
        TrainingImages([str(p) for p in photos(3)], resolution=R, batch_size=4).setup("fit")
