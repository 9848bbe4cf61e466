"""Data side: image reading, masks, the dataset, the group sampler and the datamodule."""

from __future__ import annotations

import shutil
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import datamodules.images as images_module
from datamodules import EmbeddingDataModule, ImageFolderDataset
from embedding.fitting.sampler import GroupRepeatSampler
from embedding.images import ImageReadError, load_image
from embedding.masks import MaskSpec, blur, dilate, finish, shape_mask
from tests.photos import PHOTOS, photos

R = 32


@pytest.fixture
def photo() -> Path:
    return photos(1)[0]


def copy_photos(folder: Path, n: int) -> list[Path]:
    """Copies of ``n`` photos in a temporary folder (for tests that put bad files beside them)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(p, folder / p.name)) for p in photos(n)]


# ---------------------------------------------------------------- image reading


def test_load_image_shape_range(photo: Path) -> None:
    x = load_image(photo, R)
    assert x.shape == (3, R, R) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.1  # a photo, not a flat image


def test_centre_square_crop_of_the_shorter_side(tmp_path: Path) -> None:
    wide = np.zeros((100, 300, 3), np.uint8)
    wide[:, :100] = (255, 0, 0)
    wide[:, 100:200] = (0, 255, 0)
    wide[:, 200:] = (0, 0, 255)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    x = load_image(tmp_path / "wide.png", 16)
    green = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 16, 16)
    assert torch.allclose(x, green, atol=1e-4)


def test_grayscale_becomes_three_equal_channels(photo: Path, tmp_path: Path) -> None:
    Image.open(photo).convert("L").save(tmp_path / "gray.png")
    x = load_image(tmp_path / "gray.png", R)
    assert x.shape == (3, R, R)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_alpha_is_composited_on_white(photo: Path, tmp_path: Path) -> None:
    rgba = Image.open(photo).convert("RGBA")
    rgba.save(tmp_path / "opaque.png")
    assert torch.allclose(load_image(tmp_path / "opaque.png", R), load_image(photo, R), atol=1e-6)
    rgba.putalpha(0)
    rgba.save(tmp_path / "clear.png")
    assert torch.allclose(load_image(tmp_path / "clear.png", R), torch.ones(3, R, R), atol=1e-5)
    Image.open(photo).convert("LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png", R).shape == (3, R, R)


def test_palette_and_cmyk_read_as_rgb(photo: Path, tmp_path: Path) -> None:
    palette = Image.open(photo).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    palette.save(tmp_path / "palette.png")
    palette.convert("RGB").save(tmp_path / "palette_rgb.png")
    assert torch.allclose(
        load_image(tmp_path / "palette.png", R), load_image(tmp_path / "palette_rgb.png", R)
    )
    Image.open(photo).convert("CMYK").save(tmp_path / "cmyk.tif")
    assert torch.allclose(load_image(tmp_path / "cmyk.tif", R), load_image(photo, R), atol=1e-6)


def test_sixteen_bit_png_matches_eight_bit(photo: Path, tmp_path: Path) -> None:
    gray = np.asarray(Image.open(photo).convert("L"))
    Image.fromarray(gray).save(tmp_path / "g8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    x8, x16 = load_image(tmp_path / "g8.png", R), load_image(tmp_path / "g16.png", R)
    assert (x8 - x16).abs().max() <= 2 / 255  # 1/255 of the [0, 1] range


def test_exif_orientation_is_applied(photo: Path, tmp_path: Path) -> None:
    upright = Image.open(photo)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display needs a 90-degree clockwise turn
    upright.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "tagged.jpg", exif=exif, quality=95)
    stored = Image.open(tmp_path / "tagged.jpg")
    assert stored.size == (upright.height, upright.width)
    stored.transpose(Image.Transpose.ROTATE_270).save(tmp_path / "by_hand.png")
    assert torch.allclose(
        load_image(tmp_path / "tagged.jpg", R), load_image(tmp_path / "by_hand.png", R), atol=1e-6
    )


@pytest.mark.parametrize("limit", [10_000, 30_000])  # above 2x the limit PIL raises, above 1x it warns
def test_decompression_bomb_is_an_error(photo: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageReadError, match=photo.name):
        load_image(photo, R)


def make_bad_files(folder: Path, good: Path) -> dict[str, Path]:
    """Files a user might leave among their photos: truncated, empty, not an image."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    bad = {"truncated": folder / "truncated.jpg", "empty": folder / "empty.png", "text": folder / "notes.jpg"}
    bad["truncated"].write_bytes(data[: len(data) // 2])
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not a picture\n")
    return bad


def test_bad_files_raise_naming_the_file(photo: Path, tmp_path: Path) -> None:
    for path in make_bad_files(tmp_path, photo).values():
        with pytest.raises(ImageReadError, match=path.name):
            load_image(path, R)


def test_bad_files_are_reported_and_the_rest_load(tmp_path: Path) -> None:
    good = copy_photos(tmp_path / "in", 2)
    bad = make_bad_files(tmp_path / "in", good[0])
    (tmp_path / "in" / "readme.txt").write_text("ignored: not an image extension")
    ds = ImageFolderDataset(tmp_path / "in", R)
    assert [stem for stem, _ in ds.items] == [p.stem for p in good]
    assert sorted(Path(path).name for path, _ in ds.failures) == sorted(p.name for p in bad.values())
    assert all(Path(path).name in reason for path, reason in ds.failures)
    assert ds[1]["image"].shape == (3, R, R)


def test_no_valid_image_is_a_clear_error(photo: Path, tmp_path: Path) -> None:
    bad = make_bad_files(tmp_path, photo)
    with pytest.raises(ValueError, match="truncated.jpg"):
        ImageFolderDataset([str(p) for p in bad.values()], R)


def test_inputs_as_file_glob_and_list(tmp_path: Path) -> None:
    files = photos(3)
    assert len(ImageFolderDataset(files[0], R)) == 1
    assert len(ImageFolderDataset(str(PHOTOS / f"{files[0].stem[:-1]}*.jpg"), R)) >= 1
    ds = ImageFolderDataset([str(files[2]), str(files[0]), str(files[2])], R)
    assert [stem for stem, _ in ds.items] == [files[2].stem, files[0].stem]  # order kept, duplicates once


def test_shared_stems_are_made_unique(photo: Path, tmp_path: Path) -> None:
    shutil.copy(photo, tmp_path / "a.jpg")
    Image.open(photo).save(tmp_path / "a.png")
    with pytest.warns(UserWarning, match="shared"):
        ds = ImageFolderDataset(tmp_path, R)
    assert [stem for stem, _ in ds.items] == ["a_jpg", "a_png"]  # sorted by file name


# ---------------------------------------------------------------- masks


def test_shape_masks_select_the_right_pixels() -> None:
    left = shape_mask(MaskSpec("left"), 8)[0]
    assert left.shape == (8, 8)
    assert left[:, :4].eq(1).all() and left[:, 4:].eq(0).all()
    right = shape_mask(MaskSpec("right"), 8)[0]
    assert torch.equal(right, 1 - left)
    top = shape_mask(MaskSpec("top"), 8)[0]
    assert top[:4].eq(1).all() and top[4:].eq(0).all()
    assert torch.equal(shape_mask(MaskSpec("bottom"), 8)[0], 1 - top)
    box = shape_mask(MaskSpec("box", box=(0.25, 0.5, 0.75, 1.0)), 8)[0]
    expected = torch.zeros(8, 8)
    expected[4:, 2:6] = 1
    assert torch.equal(box, expected)
    assert shape_mask(MaskSpec("full"), 8).eq(1).all()


def test_bad_mask_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="box"):
        MaskSpec("box")
    with pytest.raises(ValueError):
        MaskSpec("box", box=(0.5, 0.0, 0.2, 1.0))


def test_invert_and_blur_and_dilate() -> None:
    left = shape_mask(MaskSpec("left"), 16)
    assert torch.equal(finish(left, "x", invert=True), 1 - left)
    soft = blur(left, 1.5)[0]
    assert soft.min() >= 0 and soft.max() <= 1
    assert (
        (0 < soft[:, 7]).all()
        and (soft[:, 7] < 1).all()
        and (0 < soft[:, 8]).all()
        and (soft[:, 8] < 1).all()
    )
    assert torch.allclose(soft[:, 0], torch.ones(16)) and torch.allclose(
        soft[:, 15], torch.zeros(16), atol=1e-6
    )
    box = shape_mask(MaskSpec("box", box=(0.25, 0.25, 0.75, 0.75)), 16)
    grown = dilate(box, 2)
    assert grown.sum() == 12 * 12 and box.sum() == 8 * 8 and (grown >= box).all()
    assert grown.unique().tolist() == [0.0, 1.0]


def test_mask_file_is_cropped_like_its_image(photo: Path, tmp_path: Path) -> None:
    width, height = Image.open(photo).size  # 178 x 218: the crop drops (218 - 178) / 2 = 20 rows on top
    drawn = np.zeros((height, width, 3), np.uint8)  # RGB on purpose: turned to gray
    top = (height - width) // 2
    drawn[top : top + width // 2] = 255  # the top half of the visible square
    (tmp_path / "masks").mkdir()
    Image.fromarray(drawn).save(tmp_path / "masks" / f"{photo.stem}.png")
    mask = ImageFolderDataset(photo, 16, masks_dir=str(tmp_path / "masks"))[0]["mask"][0]
    assert mask[:8].eq(1).all() and mask[8:].eq(0).all()
    inverted = ImageFolderDataset(photo, 16, str(tmp_path / "masks"), MaskSpec("file", invert=True))[0][
        "mask"
    ]
    assert torch.equal(inverted[0], 1 - mask)


def test_bad_masks_drop_their_image(tmp_path: Path) -> None:
    good = copy_photos(tmp_path / "in", 3)
    masks = tmp_path / "masks"
    masks.mkdir()
    width, height = Image.open(good[0]).size
    Image.new("L", (width, height), 255).save(masks / f"{good[0].stem}.png")
    Image.new("L", (width + 1, height), 255).save(masks / f"{good[1].stem}.png")
    Image.new("L", (width, height), 0).save(masks / f"{good[2].stem}.png")
    ds = ImageFolderDataset(tmp_path / "in", R, masks_dir=str(masks))
    assert [stem for stem, _ in ds.items] == [good[0].stem]
    reasons = dict(ds.failures)
    assert f"{width + 1}x{height}" in reasons[str(good[1])] and f"{width}x{height}" in reasons[str(good[1])]
    assert f"{good[1].stem}.png" in reasons[str(good[1])]
    assert "selects no pixel" in reasons[str(good[2])] and f"{good[2].stem}.png" in reasons[str(good[2])]


def test_missing_mask_file_is_a_failure_unless_a_spec_fills_in(tmp_path: Path) -> None:
    good = copy_photos(tmp_path / "in", 2)
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.new("L", Image.open(good[0]).size, 255).save(masks / f"{good[0].stem}.png")
    missing = ImageFolderDataset(tmp_path / "in", R, masks_dir=str(masks))
    assert len(missing) == 1 and "no mask file" in missing.failures[0][1]
    ds = ImageFolderDataset(tmp_path / "in", R, masks_dir=str(masks), mask=MaskSpec("left"), blur_sigma=1.0)
    assert torch.allclose(ds[0]["mask"], torch.ones(1, R, R))
    assert torch.allclose(ds[1]["mask"], blur(shape_mask(MaskSpec("left"), R), 1.0))


# ---------------------------------------------------------------- sampler and datamodule


def test_group_repeat_sampler_order() -> None:
    sampler = GroupRepeatSampler(5, 2, 3)
    assert list(sampler) == [[0, 1]] * 3 + [[2, 3]] * 3 + [[4]] * 3
    assert len(sampler) == 9
    assert list(GroupRepeatSampler(5, 2, 1, rank=1, world_size=2)) == [[2, 3]]
    assert len(GroupRepeatSampler(0, 2, 4)) == 0 and list(GroupRepeatSampler(0, 2, 4)) == []


def fake_trainer(root: Path, resolution: int = R, steps: int = 3) -> types.SimpleNamespace:
    """What the datamodule reads from its trainer: run folder, the method's image size and steps, rank."""
    module = types.SimpleNamespace(target_resolution=resolution, steps_per_group=steps)
    return types.SimpleNamespace(
        default_root_dir=str(root), lightning_module=module, global_rank=0, world_size=1
    )


def test_datamodule_batches(tmp_path: Path) -> None:
    files = photos(3)
    dm = EmbeddingDataModule(images=[str(p) for p in files], mask=MaskSpec("top"), batch_size=2)
    dm.trainer = fake_trainer(tmp_path / "run")
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 6  # 2 groups x 3 steps
    first = batches[0]
    assert first["stem"] == [files[0].stem, files[1].stem]
    assert first["index"].dtype == torch.long and first["index"].tolist() == [0, 1]
    assert first["image"].shape == (2, 3, R, R) and first["mask"].shape == (2, 1, R, R)
    assert first["image"].min() >= -1 and first["image"].max() <= 1
    assert first["mask"][:, :, : R // 2].eq(1).all() and first["mask"][:, :, R // 2 :].eq(0).all()
    assert [b["stem"] for b in batches[3:]] == [[files[2].stem]] * 3
    assert dm.failures == [] and dm.skipped == []


def test_a_repeated_group_is_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dm = EmbeddingDataModule(images=[str(p) for p in photos(2)], batch_size=2, resolution=16)
    dm.trainer = fake_trainer(tmp_path, steps=20)
    dm.setup("fit")
    reads = []
    real = images_module.read_image
    monkeypatch.setattr(images_module, "read_image", lambda *a: reads.append(a[0]) or real(*a))
    assert len(list(dm.train_dataloader())) == 20
    assert len(reads) == 2


def test_skip_done_drops_finished_stems(tmp_path: Path) -> None:
    files = photos(3)
    run = tmp_path / "run"
    (run / "latents").mkdir(parents=True)
    torch.save({}, run / "latents" / f"{files[1].stem}.pt")
    dm = EmbeddingDataModule(images=[str(p) for p in files])
    dm.trainer = fake_trainer(run)
    dm.setup("fit")
    assert dm.skipped == [files[1].stem]
    assert [b["stem"][0] for b in dm.train_dataloader()] == [files[0].stem] * 3 + [files[2].stem] * 3
    redo = EmbeddingDataModule(images=[str(p) for p in files], skip_done=False)
    redo.trainer = fake_trainer(run)
    redo.setup("fit")
    assert len(redo.dataset) == 3 and redo.skipped == []


def test_all_done_gives_an_empty_loader_and_fit_returns(tmp_path: Path) -> None:
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        steps_per_group = 5
        target_resolution = 16

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.steps_run = 0

        def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
            self.steps_run += 1
            return (self.w - 1).pow(2).sum()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    files = photos(2)
    (tmp_path / "latents").mkdir()
    for p in files:
        torch.save({}, tmp_path / "latents" / f"{p.stem}.pt")
    dm = EmbeddingDataModule(images=[str(p) for p in files])
    module = Module()
    trainer = pl.Trainer(
        default_root_dir=str(tmp_path),
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, datamodule=dm)
    assert any("length of `DataLoader` across ranks is zero" in str(w.message) for w in caught)
    assert dm.skipped == [p.stem for p in files] and len(dm.dataset) == 0
    assert len(dm.train_dataloader()) == 0
    assert module.steps_run == 0


def test_crop_box_cuts_images_and_mask_files_alike(tmp_path):
    photo = tmp_path / "face.png"
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[10:30, 20:40] = (255, 0, 0)
    Image.fromarray(rgb).save(photo)
    masks = tmp_path / "masks"
    masks.mkdir()
    gray = np.zeros((40, 60), np.uint8)
    gray[10:30, 20:30] = 255
    Image.fromarray(gray).save(masks / "face.png")
    item = ImageFolderDataset(str(photo), 8, masks_dir=str(masks), crop=(20, 10, 40, 30))[0]
    assert torch.allclose(item["image"][0], torch.ones(8, 8), atol=1e-3)
    assert torch.allclose(item["image"][1:], -torch.ones(2, 8, 8), atol=1e-3)
    assert item["mask"][0, :, :4].min() == 1 and item["mask"][0, :, 4:].max() == 0


def test_crop_box_outside_the_image_is_reported_by_name(tmp_path):
    photo = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(photo)
    good = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(good)
    dataset = ImageFolderDataset([str(photo), str(good)], 8, crop=(0, 0, 32, 32))
    assert [stem for stem, _ in dataset.items] == ["big"]
    assert "does not fit" in dataset.failures[0][1]



def test_a_crop_that_discards_most_of_the_image_is_warned_about(tmp_path):
    photo = tmp_path / "big.png"
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(photo)
    with pytest.warns(UserWarning, match=r"keeps only 25% of 256×256 images"):
        ImageFolderDataset(str(photo), 8, crop=(25, 57, 153, 185))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageFolderDataset(str(PHOTOS / "000002.jpg"), 8, crop=(25, 57, 153, 185))  # 42% of CelebA's layout


# ---------------------------------------------------------------- paired images, solutions, scribbles


def test_second_image_pairs_by_stem_or_one_file(tmp_path: Path) -> None:
    first, second = copy_photos(tmp_path / "a", 2), copy_photos(tmp_path / "b", 2)
    by_stem = ImageFolderDataset(tmp_path / "a", R, second=str(tmp_path / "b"))
    for i, path in enumerate(second):
        assert torch.equal(by_stem[i]["second"], load_image(path, R))
    one = ImageFolderDataset(tmp_path / "a", R, second=str(second[1]))
    assert all(torch.equal(one[i]["second"], load_image(second[1], R)) for i in range(2))
    second[0].unlink()
    partial = ImageFolderDataset(tmp_path / "a", R, second=str(tmp_path / "b"))
    assert [stem for stem, _ in partial.items] == [first[1].stem]
    assert partial.failures[0][0] == str(first[0])


def test_solutions_serve_each_image_under_numbered_stems(photo: Path) -> None:
    dataset = ImageFolderDataset(photo, R, solutions=3)
    assert [dataset[i]["stem"] for i in range(3)] == [f"{photo.stem}_{k}" for k in (1, 2, 3)]
    assert torch.equal(dataset[0]["image"], dataset[2]["image"])


def test_scribble_layer_paints_the_image_and_gives_second_and_mask(photo: Path, tmp_path: Path) -> None:
    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 0, 0, 255), (0, 0, 32, 16))
    layer.save(tmp_path / "strokes.png")
    item = ImageFolderDataset(photo, R, scribble=str(tmp_path / "strokes.png"))[0]
    strokes = torch.zeros(1, R, R)
    strokes[:, :8, :16] = 1
    assert torch.equal(item["mask"], strokes)
    assert torch.equal(item["second"], load_image(photo, R))
    assert torch.allclose(item["image"][:, :8, :16], torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1))
    assert torch.equal(item["image"][:, 8:], item["second"][:, 8:])
    Image.new("RGB", (64, 64)).save(tmp_path / "flat.png")
    with pytest.raises(ImageReadError, match="flat.png.*alpha"):
        ImageFolderDataset(photo, R, scribble=str(tmp_path / "flat.png"))
    with pytest.raises(ValueError, match="scribble"):
        ImageFolderDataset(photo, R, scribble=str(tmp_path / "strokes.png"), mask=MaskSpec("left"))


def test_image_grid_lays_images_out_as_torchvision_does() -> None:
    from torchvision.utils import make_grid

    from embedding.images import image_grid

    images = torch.rand(7, 3, 6, 5, generator=torch.Generator().manual_seed(0))
    for columns, padding, value in ((3, 1, 1.0), (8, 2, 0.0), (4, 0, 0.5)):
        assert torch.equal(image_grid(images, columns, padding, value), make_grid(images, columns, padding,
                                                                                   pad_value=value))
