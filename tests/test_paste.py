"""Pasting aligned faces back into their photos: the exact inverse of the alignment, records, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedding.commands.align import main as align_main
from embedding.commands.paste import main as paste_main
from embedding.faces.align import (
    AlignmentRecord,
    Face,
    align_with_record,
    apply_homography,
    ffhq_quad,
    read_upright_photo,
)
from embedding.faces.detector import Detection
from embedding.faces.paste import face_warp, find_record, paste
from embedding.files import sha256
from embedding.latents import Latents

FIXTURES = Path(__file__).parent / "fixtures" / "faces"


def template_landmarks(centre: tuple[float, float], size: float, angle: float) -> np.ndarray:
    """68 dlib-ordered landmarks of a schematic face ``size`` pixels wide, turned by ``angle`` degrees."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([-0.5 * np.cos(t), -0.1 + 0.7 * np.sin(t)], axis=1)
    brows = np.stack([np.r_[np.linspace(-0.4, -0.1, 5), np.linspace(0.1, 0.4, 5)], np.full(10, -0.3)], axis=1)
    nose = np.r_[np.stack([np.zeros(4), np.linspace(-0.2, 0.1, 4)], axis=1),
                 np.stack([np.linspace(-0.1, 0.1, 5), np.full(5, 0.15)], axis=1)]
    e = np.linspace(np.pi, -np.pi, 6, endpoint=False)
    eyes = [np.stack([cx + 0.07 * np.cos(e), -0.15 + 0.03 * np.sin(e)], axis=1) for cx in (-0.22, 0.22)]
    m, n = np.linspace(np.pi, -np.pi, 12, endpoint=False), np.linspace(np.pi, -np.pi, 8, endpoint=False)
    mouth = [np.stack([0.18 * np.cos(m), 0.35 + 0.06 * np.sin(m)], axis=1),
             np.stack([0.12 * np.cos(n), 0.35 + 0.03 * np.sin(n)], axis=1)]
    points = np.concatenate([jaw, brows, nose, *eyes, *mouth]) * size
    a = np.radians(angle)
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return points @ rotation.T + np.asarray(centre)


def smooth_photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A smooth random colour picture (bicubic upsampling of coarse noise)."""
    noise = np.random.default_rng(seed).integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    return Image.fromarray(noise).resize((width, height), Image.BICUBIC)


def make_face(photo_path: Path, out: Path, stem: str, landmarks: np.ndarray, size: int = 128, k: int = 0,
              photo: Image.Image | None = None) -> tuple[Path, AlignmentRecord]:
    """Align one face of the photo at ``photo_path`` as ``embed align`` does: ``<out>/<stem>.png`` and its record."""
    photo = photo or Image.open(photo_path).convert("RGB")
    image, record = align_with_record(photo, Face(Detection((0, 0, 1, 1), 0.9), landmarks), size, photo_path,
                                      sha256(photo_path), k)
    out.mkdir(parents=True, exist_ok=True)
    image.save(out / f"{stem}.png")
    record.save(out / f"{stem}.json")
    return out / f"{stem}.png", AlignmentRecord.load(out / f"{stem}.json")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def full_mask(record: AlignmentRecord, **kwargs) -> np.ndarray:
    """The blend mask of a record's face over its whole photo."""
    warp = face_warp(record, **kwargs)
    mask = np.zeros(record.photo_size[::-1], dtype=np.float32)
    left, top, right, bottom = warp.box
    mask[top:bottom, left:right] = warp.mask.numpy()
    return mask


@pytest.fixture
def photo_path(tmp_path: Path) -> Path:
    path = tmp_path / "photos" / "group.png"
    path.parent.mkdir()
    smooth_photo(360, 240).save(path)
    return path


@pytest.mark.parametrize("mask", ["face", "square"])
def test_an_unedited_crop_pasted_back_is_the_photo(photo_path: Path, tmp_path: Path, mask: str):
    crop, record = make_face(photo_path, tmp_path / "aligned", "group", template_landmarks((150, 120), 70, 23))
    assert np.allclose(apply_homography(np.linalg.inv(record.to_aligned()), record.aligned_landmarks),
                       record.landmarks, atol=1e-9)
    assert np.allclose(record.quad, ffhq_quad(record.landmarks))  # no shrink: the FFHQ quad itself
    report = paste([crop], tmp_path / "out", mask=mask)
    assert report.written == [tmp_path / "out" / "group.png"] and not report.failures
    before, after = np.asarray(Image.open(photo_path)), np.asarray(Image.open(report.written[0]))
    weights = full_mask(record, mask=mask)
    assert np.array_equal(before[weights == 0], after[weights == 0]) and (weights > 0).sum() > 2000
    assert np.array_equal(before, after)   # only the crop's change is pasted: none
    warp = face_warp(record, mask)   # the inverse warp alone, of the crop itself: resampling only
    left, top, right, bottom = warp.box
    warped = warp.warp(warp.base).permute(1, 2, 0).numpy() * 255
    inside = warp.mask.numpy() > 0
    assert psnr(before[top:bottom, left:right][inside], np.rint(warped[inside])) >= 40


def test_two_faces_of_one_photo_go_into_one_output(photo_path: Path, tmp_path: Path):
    crops = [make_face(photo_path, tmp_path / "aligned", f"group_{k}", template_landmarks(c, 50, a), k=k)
             for k, (c, a) in enumerate([((90, 110), -15), ((260, 130), 30)])]
    edited = tmp_path / "edited"
    edited.mkdir()
    for crop, _ in crops:   # an "edit": every result painted white
        Image.new("RGB", (128, 128), (255, 255, 255)).save(edited / crop.name)
    report = paste([edited / c.name for c, _ in crops], tmp_path / "out", records_dir=tmp_path / "aligned",
                   match_colour=False)
    assert report.written == [tmp_path / "out" / "group.png"] and not report.failures
    before, after = np.asarray(Image.open(photo_path)), np.asarray(Image.open(report.written[0]))
    masks = [full_mask(record) for _, record in crops]
    for mask in masks:
        assert (after[mask == 1] >= 250).all()
    outside = (masks[0] == 0) & (masks[1] == 0)
    assert np.array_equal(before[outside], after[outside]) and (~outside).sum() > 1000


def test_exif_rotated_photos_are_aligned_and_pasted_upright(tmp_path: Path):
    upright = smooth_photo(240, 320, seed=3)
    path = tmp_path / "turned.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter, shown upright after a quarter turn clockwise
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif)
    shown = read_upright_photo(path)
    assert np.array_equal(np.asarray(shown), np.asarray(upright))
    crop, record = make_face(path, tmp_path / "aligned", "turned", template_landmarks((120, 170), 70, 0), photo=shown)
    assert record.photo_size == (240, 320)
    report = paste([crop], tmp_path / "out")
    after = np.asarray(Image.open(report.written[0]))
    weights = full_mask(record)
    assert after.shape == (320, 240, 3) and np.array_equal(np.asarray(upright)[weights == 0], after[weights == 0])
    assert psnr(np.asarray(upright)[weights > 0], after[weights > 0]) >= 40


@pytest.mark.parametrize("mode", ["RGBA", "I;16", "L"])
def test_sixteen_bit_gray_and_alpha_photos_keep_their_format(tmp_path: Path, mode: str):
    rgb = smooth_photo(240, 200, seed=5)
    path = tmp_path / f"photo_{mode.replace(';', '')}.png"
    if mode == "RGBA":
        rgb.convert("RGBA").save(path)
    elif mode == "L":
        rgb.convert("L").save(path)
    else:
        Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).save(path)
    crop, record = make_face(path, tmp_path / "aligned", path.stem, template_landmarks((120, 100), 60, 10),
                             photo=read_upright_photo(path))
    report = paste([crop], tmp_path / "out")
    before, after = Image.open(path), Image.open(report.written[0])
    assert after.mode == before.mode
    weights = full_mask(record)
    assert np.array_equal(np.asarray(before)[weights == 0], np.asarray(after)[weights == 0])
    scale = 257.0 if mode == "I;16" else 1.0
    assert psnr(np.asarray(before)[weights > 0] / scale, np.asarray(after)[weights > 0] / scale) >= 35


def test_bad_inputs_are_named_and_the_others_still_pasted(photo_path: Path, tmp_path: Path, monkeypatch, capsys):
    good, _ = make_face(photo_path, tmp_path / "aligned", "group", template_landmarks((150, 120), 70, 0))
    other = tmp_path / "photos" / "other.png"
    smooth_photo(200, 200, seed=1).save(other)
    changed, _ = make_face(other, tmp_path / "aligned", "other", template_landmarks((100, 100), 60, 0))
    smooth_photo(200, 200, seed=2).save(other)   # the photo changes after its alignment
    small = tmp_path / "small" / "group.png"
    small.parent.mkdir()
    Image.open(good).resize((64, 64)).save(small)
    lost = tmp_path / "lost" / "nobody.png"
    lost.parent.mkdir()
    Image.open(good).save(lost)
    out = tmp_path / "out"
    argv = [str(good), str(changed), str(small), str(lost), str(tmp_path / "none.png"), "--out", str(out)]
    assert paste_main(argv[:-2] + ["--records", str(tmp_path / "aligned"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"wrote {out / 'group.png'}" in err and not (out / "other.png").exists()
    assert f"{changed.with_suffix('.json')}: its photo {other.resolve()} has changed" in err
    assert f"{small}: a 64×64 result, but its record" in err and "--size 64" in err
    assert f"{lost}: no alignment record found" in err and "embed align PHOTO --out DIR" in err
    assert f"{tmp_path / 'none.png'}: no such result file" in err
    assert "pasted 1 of 5 result(s) into 1 photo(s)" in err

    photo_path.unlink()
    assert paste_main([str(good), "--out", str(out)]) == 1
    assert f"its photo {photo_path.resolve()} no longer exists" in capsys.readouterr().err


def test_huge_photos_are_refused_with_the_limit(photo_path: Path, tmp_path: Path, monkeypatch):
    crop, _ = make_face(photo_path, tmp_path / "aligned", "group", template_landmarks((150, 120), 70, 0))
    monkeypatch.setattr("embedding.faces.align.MAX_PHOTO_PIXELS", 10_000)
    report = paste([crop], tmp_path / "out")
    assert not report.written and "360×240 = 86,400 pixels, over the limit of 10,000" in report.failures[0][1]
    assert str(photo_path) in report.failures[0][1]
    with pytest.raises(ValueError, match=f"{photo_path}.*86,400 pixels, over the limit of 10,000"):   # embed align
        read_upright_photo(photo_path)


def aligned_run(photo_path: Path, tmp_path: Path, generator: Path) -> tuple[Path, AlignmentRecord]:
    """A face aligned at 32² (the tiny generator's size) and a run folder whose latents file comes from it."""
    aligned = tmp_path / "aligned"
    _, record = make_face(photo_path, aligned, "group", template_landmarks((150, 120), 70, 5), size=32)
    run = tmp_path / "run"
    (run / "latents").mkdir(parents=True)
    (run / "config.yaml").write_text(f"data:\n  images: {aligned}\n")
    torch.manual_seed(0)
    Latents(torch.randn(8, 32) * 0.1, None, {"generator": str(generator), "stem": "group"}).save(
        run / "latents" / "group.pt")
    return run / "latents" / "group.pt", record


def test_latents_of_a_run_find_their_record_through_the_runs_inputs(photo_path: Path, tmp_path: Path,
                                                                    tiny_generator_file: Path):
    latents, record = aligned_run(photo_path, tmp_path, tiny_generator_file)
    assert find_record(latents) == tmp_path / "aligned" / "group.json"
    report = paste([latents], tmp_path / "out", mask="square", feather=3)
    assert report.written and not report.failures
    before, after = np.asarray(Image.open(photo_path)), np.asarray(Image.open(report.written[0]))
    weights = full_mask(record, mask="square", feather=3)
    assert np.array_equal(before[weights == 0], after[weights == 0]) and not np.array_equal(before, after)


def test_edits_find_their_record_by_the_longest_stem_they_start_with(tmp_path: Path):
    for stem in ("group", "group_1", "group_10"):
        (tmp_path / f"{stem}.json").write_text("{}")
    edit = tmp_path / "group_1.smile" / "4.png"
    edit.parent.mkdir()
    assert find_record(edit, [tmp_path]) == tmp_path / "group_1.json"
    assert find_record(tmp_path / "group_10~group.png") == tmp_path / "group_10.json"


def test_embed_align_writes_a_record_beside_each_face(tmp_path: Path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "scene.png").write_bytes((FIXTURES / "scene.png").read_bytes())
    out = tmp_path / "aligned"
    assert align_main([str(photos), "--out", str(out), "--size", "64", "--detector-size", "320",
                       "--threshold", "0.3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["scene_0.json", "scene_0.png", "scene_1.json", "scene_1.png"]
    fields = json.loads((out / "scene_1.json").read_text())
    assert fields["photo"] == str((photos / "scene.png").resolve()) and fields["photo_size"] == [320, 240]
    assert fields["photo_sha256"] == sha256(photos / "scene.png") and fields["output_size"] == 64
    record = AlignmentRecord.load(out / "scene_1.json")
    assert record.face == 1 and 0 < record.score <= 1 and record.landmarks.shape == (68, 2)
    assert np.allclose(apply_homography(record.to_aligned(), record.landmarks), record.aligned_landmarks)
    assert paste_main([str(out / "scene_0.png"), str(out / "scene_1.png"), "--out", str(tmp_path / "pasted")]) == 0
    assert Image.open(tmp_path / "pasted" / "scene.png").size == (320, 240)


def test_edit_frames_are_pasted_back_with_one_warp(photo_path: Path, tmp_path: Path, tiny_generator_file: Path):
    from embedding.commands.edit import main as edit_main
    from embedding.edits.directions import Direction

    latents, record = aligned_run(photo_path, tmp_path, tiny_generator_file)
    Direction(torch.nn.functional.normalize(torch.randn(32), dim=0), None, {"how": "test"}).save(tmp_path / "d.pt")
    out = tmp_path / "edit"
    edit_main(["attribute", str(latents), str(tmp_path / "d.pt"), "--strengths", "[0, 20]", "--out", str(out),
               "--paste_back", "true"])
    frames = [np.asarray(Image.open(out / "group.d.pasted" / f"{s}.png")) for s in ("0", "20")]
    plain = paste([latents], tmp_path / "plain").written[0]
    assert np.array_equal(frames[0], np.asarray(Image.open(plain)))   # strength 0 is the fit, pasted
    weights, before = full_mask(record), np.asarray(Image.open(photo_path))
    assert all(np.array_equal(f[weights == 0], before[weights == 0]) for f in frames)
    assert not np.array_equal(frames[0], frames[1])


def test_single_image_edits_paste_their_result_beside_it(photo_path: Path, tmp_path: Path,
                                                         tiny_generator_file: Path):
    from embedding.commands.edit import main as edit_main

    latents, _ = aligned_run(photo_path, tmp_path, tiny_generator_file)
    out = tmp_path / "edit"
    edit_main(["arithmetic", str(latents), str(latents), str(latents), "--out", str(out), "--paste_back", "true"])
    edit_main(["mix", str(latents), str(latents), "--rows", "2", "--out", str(out), "--paste_back", "true"])
    plain = np.asarray(Image.open(paste([latents], tmp_path / "plain").written[0]))
    for pasted in ("group+group-group.pasted.png", "group+group.rows2.pasted.png"):   # both edits keep the code
        assert np.array_equal(np.asarray(Image.open(out / pasted)), plain)


def test_fit_pastes_each_render_into_its_photo(photo_path: Path, tmp_path: Path, caplog):
    from types import SimpleNamespace

    from callbacks.writer import paste_back
    from datamodules.embedding import EmbeddingDataModule
    from embedding.fitting.run_folder import RunFolder

    crop, record = make_face(photo_path, tmp_path / "aligned", "group", template_landmarks((150, 120), 70, 5))
    data = EmbeddingDataModule(str(tmp_path / "aligned"), paste_back=True)
    data.dataset = SimpleNamespace(items=[("group", crop), ("lost", tmp_path / "lost.png")])
    trainer, folder = SimpleNamespace(datamodule=data), RunFolder(tmp_path / "run")
    render = torch.zeros(3, 128, 128)   # a gray face
    paste_back(trainer, folder, "group", render)
    pasted = np.asarray(Image.open(tmp_path / "run" / "pasted" / "group.png"))
    weights, before = full_mask(record), np.asarray(Image.open(photo_path))
    assert np.array_equal(pasted[weights == 0], before[weights == 0])
    assert np.ptp(pasted[weights == 1].astype(int), axis=0).max() <= 8   # flat, as the render (colour matched)
    paste_back(trainer, folder, "lost", render)   # no record: logged, nothing written, nothing raised
    assert "lost: not pasted back" in caplog.text and not (tmp_path / "run" / "pasted" / "lost.png").exists()


def test_colour_matching_brings_the_border_to_the_photos_colour(photo_path: Path, tmp_path: Path):
    crop, record = make_face(photo_path, tmp_path / "aligned", "group", template_landmarks((150, 120), 70, 0))
    edited = tmp_path / "edited" / "group.png"
    edited.parent.mkdir()
    Image.fromarray(np.clip(np.asarray(Image.open(crop), dtype=int) + 60, 0, 255).astype(np.uint8)).save(edited)
    before = np.asarray(Image.open(photo_path), dtype=float)
    ring = face_warp(record).ring.numpy()
    left, top, right, bottom = face_warp(record).box
    errors = []
    for match in (False, True):
        out = paste([edited], tmp_path / str(match), records_dir=tmp_path / "aligned", match_colour=match).written[0]
        after = np.asarray(Image.open(out), dtype=float)
        errors.append(np.abs(after - before)[top:bottom, left:right][ring].mean())
    assert errors[1] < errors[0] / 3
