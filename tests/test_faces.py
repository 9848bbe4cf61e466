"""The face toolkit: tfjs weight reading, and the PyTorch ports of face-api's networks against
golden outputs of face-api's own JavaScript (``tools/face_api_golden.js``)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from datamodules.images import ImageFolderDataset
from embedding.commands.align import main as align_main
from embedding.faces.align import align_face, ffhq_quad, find_faces, gaussian_blur, to_tensor
from embedding.faces.attributes import EXPRESSIONS, AgeGenderNet, ExpressionNet, face_attributes
from embedding.faces.descriptor import DescriptorNet, compute_descriptors, face_descriptors, identity_distance
from embedding.faces.detector import MEAN_RGB, DetectorNet, detect_faces
from embedding.faces.landmarks import LandmarkNet, detect_landmarks
from embedding.faces.layers import same_padding, shared_net, square_pad, to_input
from embedding.faces.tfjs import load_manifest
from embedding.methods.image2stylegan.module import EmbeddingModule
from embedding.methods.image2stylegan.phases import Phase
from embedding.metrics import measure
from tests.test_engine import fit

FIXTURES = Path(__file__).parent / "fixtures" / "faces"
GOLDEN = json.loads((FIXTURES / "golden.json").read_text())
FACES = ("face0", "face1")


def image(name: str) -> torch.Tensor:
    """A fixture image as ``[1, 3, H, W]`` RGB 0-255."""
    return torch.from_numpy(np.array(Image.open(FIXTURES / name).convert("RGB"))).permute(2, 0, 1)[None].float()


def max_diff(ours: torch.Tensor, theirs: list[float]) -> float:
    return (ours.flatten() - torch.tensor(theirs)).abs().max().item()


def test_manifest_reader_dequantises_and_keeps_raw_float32(tmp_path: Path):
    values = np.array([1.5, -2.0, 3.25], dtype="<f4")
    (tmp_path / "w.bin").write_bytes(bytes([0, 10, 255, 7]) + values.tobytes())
    manifest = [{"paths": ["w.bin"], "weights": [
        {"name": "q", "shape": [2, 2], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "f", "shape": [3], "dtype": "float32"},
    ]}]
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    tensors = load_manifest(tmp_path / "m.json")
    assert tensors["q"].tolist() == [[-1.0, 4.0], [126.5, 2.5]]
    assert tensors["f"].tolist() == [1.5, -2.0, 3.25]

    (tmp_path / "w.bin").write_bytes(bytes(4) + values.tobytes() + struct.pack("<f", 0.0))
    with pytest.raises(ValueError, match="unread"):
        load_manifest(tmp_path / "m.json")


def test_tf_same_padding_puts_the_odd_pixel_after():
    assert same_padding(112, 3, 2) == (0, 1)
    assert same_padding(7, 3, 1) == (1, 1)
    assert same_padding(13, 2, 1) == (0, 1)


@pytest.mark.parametrize("face", FACES)
def test_landmarks_match_face_api(face: str):
    golden = GOLDEN["faces"][face]
    net = shared_net(LandmarkNet)
    small = image(f"{face}_112.png")
    with torch.no_grad():
        assert max_diff(net(to_input(small, 112)), golden["landmarks"]) < 1e-5
        # A 112x96 crop is padded to a centred square; the points come back in the crop's pixels.
        points = detect_landmarks(net, small[:, :, 8:104]) / torch.tensor([112.0, 96.0])
    assert max_diff(points, golden["landmarks_112x96"]) < 1e-5


@pytest.mark.parametrize("face", FACES)
def test_descriptor_matches_face_api(face: str):
    with torch.no_grad():
        ours = compute_descriptors(shared_net(DescriptorNet), image(f"{face}_150.png"))
    assert max_diff(ours, GOLDEN["faces"][face]["descriptor"]) < 1e-4


def test_descriptor_separates_the_two_faces():
    d = [torch.tensor(GOLDEN["faces"][f]["descriptor"]) for f in FACES]
    with torch.no_grad():
        ours = compute_descriptors(shared_net(DescriptorNet), torch.cat([image(f"{f}_150.png") for f in FACES]))
    assert torch.allclose((ours[0] - ours[1]).norm(), (d[0] - d[1]).norm(), atol=1e-4)
    assert (ours[0] - ours[1]).norm() > 0.3


@pytest.mark.parametrize("face", FACES)
def test_attributes_match_face_api(face: str):
    golden = GOLDEN["faces"][face]
    x = to_input(image(f"{face}_112.png"), 112)
    with torch.no_grad():
        age, gender = shared_net(AgeGenderNet)(x)
        expression = shared_net(ExpressionNet)(x).softmax(dim=1)
    assert max_diff(age, golden["age"]) < 1e-3
    assert max_diff(gender.softmax(dim=1), golden["gender"]) < 1e-5
    assert max_diff(expression, golden["expression"]) < 1e-5


def test_detector_matches_face_api():
    golden = GOLDEN["detector"]
    scene = image("scene.png")
    net = shared_net(DetectorNet)
    with torch.no_grad():
        raw = net(to_input(square_pad(scene, centred=False)[0], golden["input_size"], MEAN_RGB))
    theirs = torch.tensor(golden["raw"]).view(golden["raw_shape"]).permute(0, 3, 1, 2)
    assert (raw - theirs).abs().max().item() < 5e-4
    found = detect_faces(net, scene[0], golden["input_size"], golden["score_threshold"])
    assert len(found) == len(golden["boxes"]) == 2
    for det, box, score in zip(found, golden["boxes"], golden["scores"], strict=True):
        assert np.allclose(det.box, box, atol=1e-2)
        assert abs(det.score - score) < 1e-5


def test_networks_are_differentiable_with_respect_to_the_image():
    x = image("face0_150.png").requires_grad_(True)
    compute_descriptors(shared_net(DescriptorNet), x).norm().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ffhq_quad_of_an_upright_face():
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = (40.0, 50.0)  # left eye
    landmarks[42:48] = (60.0, 50.0)  # right eye
    landmarks[48], landmarks[54] = (42.0, 72.0), (58.0, 72.0)  # mouth corners
    # x = eye_to_eye + rotated eye_to_mouth = (42, 0) -> unit, times max(2 * 20, 1.8 * 22) = 40.
    expected = np.array([[10.0, 12.2], [10.0, 92.2], [90.0, 92.2], [90.0, 12.2]])
    assert np.allclose(ffhq_quad(landmarks), expected)


def test_align_undoes_the_tilt_of_both_faces_in_a_photo():
    photo = Image.open(FIXTURES / "scene.png")
    faces = find_faces(photo, input_size=320, score_threshold=0.3)
    assert len(faces) == 2
    assert faces[0].detection.box[0] > 160 > faces[1].detection.box[2]  # the right face scores higher
    for face in faces:
        aligned = align_face(photo, face.landmarks, 128)
        assert aligned.size == (128, 128)
        points = detect_landmarks(shared_net(LandmarkNet), to_tensor(aligned)[None])[0].numpy()
        eye_left, eye_right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
        tilt = np.degrees(np.arctan2(*(eye_right - eye_left)[::-1]))
        original = face.landmarks[42:48].mean(axis=0) - face.landmarks[36:42].mean(axis=0)
        assert abs(np.degrees(np.arctan2(*original[::-1]))) > 5  # tilted in the photo
        assert abs(tilt) < 4  # level once aligned
        assert abs((eye_left + eye_right)[0] / 2 - 64) < 6  # eyes centred left to right


def test_embed_align_writes_faces_reports_photos_without_one(tmp_path: Path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "scene.png").write_bytes((FIXTURES / "scene.png").read_bytes())
    Image.new("RGB", (96, 64), (120, 140, 160)).save(photos / "wall.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "aligned"
    argv = [str(photos), "--out", str(out), "--size", "64", "--detector-size", "320", "--threshold", "0.3"]
    assert align_main([*argv, "--preview", str(tmp_path / "sheet.png")]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["scene_0.png", "scene_1.png"]
    assert Image.open(out / "scene_0.png").size == (64, 64)
    assert Image.open(tmp_path / "sheet.png").size == (3 * 128, 2 * 128)  # photo + 2 faces; 2 readable photos
    err = capsys.readouterr().err
    assert "wall.png: no face found" in err and "broken.jpg: can't be read" in err

    assert align_main([str(photos / "wall.png"), "--out", str(tmp_path / "none")]) == 1

    with pytest.raises(SystemExit) as refused:  # a sheet among the faces would be fitted as one
        align_main([*argv, "--preview", str(out / "sheet.png")])
    assert refused.value.code == 2 and "is inside --out" in capsys.readouterr().err
    assert not (out / "sheet.png").exists()


def test_datamodule_aligns_photos_on_the_fly(tmp_path: Path):
    (tmp_path / "scene.png").write_bytes((FIXTURES / "scene.png").read_bytes())
    Image.new("RGB", (96, 64), (120, 140, 160)).save(tmp_path / "wall.png")
    data = ImageFolderDataset(str(tmp_path), 32, align="ffhq")
    assert [stem for stem, _ in data.items] == ["scene"] and "no face found" in data.failures[0][1]
    item = data[0]
    assert item["image"].shape == (3, 32, 32) and -1 <= item["image"].min() < item["image"].max() <= 1
    assert item["mask"].shape == (1, 32, 32)
    with pytest.raises(ValueError, match="crop"):
        ImageFolderDataset(str(tmp_path), 32, align="ffhq", crop=(0, 0, 10, 10))


def test_metrics_rows_carry_identity_and_landmark_error_when_asked():
    target = torch.cat([image("face0_112.png"), image("face1_112.png")]) / 127.5 - 1
    render = torch.stack([target[0], target[0]])  # the first is exact, the second another person
    mask = torch.ones(2, 1, 112, 112)
    plain = measure(render, target, mask, ["a", "b"], "WI", 5)
    assert plain[0]["identity"] == plain[0]["landmark_error"] == ""
    rows = measure(render, target, mask, ["a", "b"], "WI", 5, identity=True)
    assert float(rows[0]["identity"]) == 0.0 and float(rows[0]["landmark_error"]) == 0.0
    assert float(rows[1]["identity"]) > 0.3 and float(rows[1]["landmark_error"]) > 0.02
    assert rows[1]["psnr_masked"] == ""
    with torch.no_grad():
        expected = identity_distance(render[1:], target[1:])
    assert abs(float(rows[1]["identity"]) - expected.item()) < 1e-4


def test_identity_phase_term_pulls_the_render_towards_the_targets_descriptor(tiny_generator_file, tmp_path: Path):
    faces = torch.cat([image("face0_112.png"), image("face1_112.png")]) / 127.5 - 1
    targets = torch.nn.functional.interpolate(faces, size=32, mode="area")
    items = [{"stem": f"f{i}", "index": i, "image": targets[i], "mask": torch.ones(1, 32, 32)} for i in range(2)]
    m = EmbeddingModule(generator=str(tiny_generator_file), phases=[Phase("WI", steps=6, lr=0.05, identity=1.0)],
                        vgg_weights="random")
    fit(m, items, tmp_path / "run", batch_size=2)
    with torch.no_grad():  # a W+ phase leaves the noise maps where they started
        before = identity_distance(m.generator.synthesis(m.w_start, noise=list(m.noise)), targets)
        after = identity_distance(m.current_render(), targets)
    assert (after < before - 0.05).all(), (before, after)


def test_face_attributes_library_call():
    faces = torch.cat([image(f"{f}_112.png") for f in FACES]) / 127.5 - 1
    scores = face_attributes(faces)
    assert scores["age"].shape == scores["gender_prob"].shape == (2,)
    assert scores["expression"].shape == (2, len(EXPRESSIONS))
    assert torch.allclose(scores["expression"].sum(dim=1), torch.ones(2))
    for i, face in enumerate(FACES):
        golden = GOLDEN["faces"][face]
        assert abs(scores["age"][i].item() - golden["age"][0]) < 1e-2
        assert abs(scores["gender_prob"][i].item() - golden["gender"][0]) < 1e-4
        assert max_diff(scores["expression"][i], golden["expression"]) < 1e-4


def test_border_blur_is_a_normalised_gaussian():
    impulse = np.zeros((41, 41, 1), dtype=np.float32)
    impulse[20, 20] = 1.0
    out = gaussian_blur(impulse, 3.0)[..., 0]
    assert abs(out.sum() - 1.0) < 1e-5 and out.argmax() == 20 * 41 + 20
    profile = out[20] / out[20, 20]
    assert abs(profile[23] - np.exp(-0.5)) < 1e-4 and np.allclose(profile, profile[::-1], atol=1e-6)
    flat = np.full((9, 13, 3), 7.0, dtype=np.float32)
    assert np.allclose(gaussian_blur(flat, 4.0), 7.0, atol=1e-4)


@pytest.mark.cuda
def test_networks_give_the_same_answers_on_cuda():
    faces = torch.cat([image(f"{f}_112.png") for f in FACES]) / 127.5 - 1
    on_gpu = face_attributes(faces.cuda())
    for key, value in face_attributes(faces).items():
        assert torch.allclose(on_gpu[key].cpu(), value, atol=1e-3, rtol=1e-3), key
    assert torch.allclose(face_descriptors(faces.cuda()).cpu(), face_descriptors(faces), atol=1e-3)


def test_a_face_that_fills_the_frame_is_found_on_a_second_look():
    photo = Image.open(FIXTURES / "face0_150.png")
    assert detect_faces(shared_net(DetectorNet), to_tensor(photo)) == []  # the detector alone misses it
    faces = find_faces(photo)
    assert len(faces) == 1
    left, top, right, bottom = faces[0].detection.box
    assert right - left > 60 and bottom - top > 60  # in the photo's own pixels, not the padded ones
    assert (faces[0].landmarks.min(axis=0) > -10).all() and (faces[0].landmarks.max(axis=0) < 160).all()


def test_non_maximum_suppression_keeps_the_boxes_torchvision_keeps():
    from torchvision.ops import nms

    from embedding.faces.detector import non_maximum_suppression

    g = torch.Generator().manual_seed(0)
    for count in (0, 1, 5, 40):
        corner = torch.rand(count, 2, generator=g) * 100
        boxes = torch.cat([corner, corner + torch.rand(count, 2, generator=g) * 50 + 1], 1)
        scores = torch.rand(count, generator=g)
        assert torch.equal(non_maximum_suppression(boxes, scores, 0.4), nms(boxes, scores, 0.4))


def test_identity_looks_at_the_face_box_only():
    from embedding.faces.crop import FFHQ, WHOLE, crop_face, resolve_face_box
    assert resolve_face_box("auto", 64) == WHOLE and resolve_face_box("auto", 1024) == FFHQ
    with pytest.raises(ValueError, match="face box"):
        resolve_face_box([0.5, 0.2, 0.4, 0.9], 256)
    face = to_tensor(Image.open(FIXTURES / "face0_150.png").convert("RGB"))[None] / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1  # hair, neck and background
    left, top, right, bottom = (round(v * 256) for v in FFHQ)
    photo[..., top:bottom, left:right] = F.interpolate(face, size=(bottom - top, right - left), mode="bilinear")
    other = photo.clone()
    other[..., :top, :] = torch.rand(1, 3, top, 256, generator=g) * 2 - 1  # another background above the face
    assert torch.equal(crop_face(photo, FFHQ), crop_face(other, FFHQ))
    assert identity_distance(photo, other, FFHQ).item() == 0
    assert identity_distance(photo, other, WHOLE).item() > 0.01
