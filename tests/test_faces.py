"""The face toolkit: tfjs weight reading, and the PyTorch ports of face-api's networks against
golden outputs of face-api's own JavaScript (``tools/face_api_golden.js``)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from embedding.faces.attributes import AgeGenderNet, ExpressionNet
from embedding.faces.descriptor import DescriptorNet, compute_descriptors
from embedding.faces.detector import MEAN_RGB, DetectorNet, detect_faces
from embedding.faces.landmarks import LandmarkNet, detect_landmarks
from embedding.faces.layers import same_padding, shared_net, square_pad, to_input
from embedding.faces.tfjs import load_manifest

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
