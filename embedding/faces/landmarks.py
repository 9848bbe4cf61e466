"""face-api's 68-point landmark network (``face_landmark_68``) in PyTorch.

Four densely connected blocks of separable convolutions (112 -> 7), a 7x7 average pool and a
fully connected layer giving 68 (x, y) pairs in [0, 1] of the square input. The same feature
extractor, with other weights, drives the expression classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedding.faces.crop import WHOLE, FaceBox, crop_face
from embedding.faces.layers import Conv, SeparableConv, from_unit, shared_net, square_pad, to_input
from embedding.faces.tfjs import load_model

INPUT_SIZE = 112


class DenseBlock(nn.Module):
    """Four convolutions, each fed the ReLU of the sum of all previous outputs; halves the size."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, first: bool = False):
        super().__init__()
        conv0 = Conv(weights, f"{prefix}/conv0", stride=2) if first else SeparableConv(weights, f"{prefix}/conv0", 2)
        self.convs = nn.ModuleList([conv0] + [SeparableConv(weights, f"{prefix}/conv{i}") for i in (1, 2, 3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = F.relu(self.convs[0](x))
        for conv in self.convs[1:]:
            total = total + conv(F.relu(total))
        return F.relu(total)


class DenseFeatureExtractor(nn.Module):
    """112x112 normalised input -> ``[N, 256]`` features (after the final 7x7 average pool)."""

    def __init__(self, weights: dict[str, torch.Tensor]):
        super().__init__()
        self.blocks = nn.ModuleList([DenseBlock(weights, f"dense{i}", first=i == 0) for i in range(4)])

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of every dense block (56², 28², 14², 7²)."""
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.feature_maps(x)[-1], 7, 2).flatten(1)


class Linear(nn.Module):
    """Dense layer from a TF ``[in, out]`` weight matrix and bias."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str):
        super().__init__()
        self.register_buffer("weight", weights[f"{prefix}/weights"].t().contiguous())
        self.register_buffer("bias", weights[f"{prefix}/bias"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class LandmarkNet(nn.Module):
    """68 landmarks from normalised 112x112 face crops: ``[N, 68, 2]`` in [0, 1] of the crop."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        weights = weights if weights is not None else load_model("face_landmark_68_model")
        self.features = DenseFeatureExtractor(weights)
        self.fc = Linear(weights, "fc")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x)).view(-1, 68, 2)


def detect_landmarks(net: LandmarkNet, crops: torch.Tensor) -> torch.Tensor:
    """68 landmarks of each face crop (RGB 0-255, NCHW, any size) in the crop's pixel coordinates.

    A non-square crop is zero-padded to a centred square first, as face-api does.
    """
    square, left, top = square_pad(crops)
    points = net(to_input(square, INPUT_SIZE)) * square.shape[-1]
    return points - points.new_tensor([left, top])


def face_landmarks(images: torch.Tensor) -> torch.Tensor:
    """68 landmarks ``[N, 68, 2]`` in pixels of face images in [-1, 1], the whole image taken as
    the face crop (the network is loaded once per device)."""
    return detect_landmarks(shared_net(LandmarkNet, images.device), from_unit(images.float()))


def landmark_error(render: torch.Tensor, target: torch.Tensor, box: FaceBox = WHOLE) -> torch.Tensor:
    """Per-image mean distance ``[N]`` between the landmarks of ``render`` and ``target`` (both
    in [-1, 1], located in their ``box`` region), as a fraction of the target's distance between the eye centres."""
    ours, theirs = face_landmarks(crop_face(render, box)), face_landmarks(crop_face(target, box))
    eyes = (theirs[:, 42:48].mean(dim=1) - theirs[:, 36:42].mean(dim=1)).norm(dim=1)
    return (ours - theirs).norm(dim=2).mean(dim=1) / eyes.clamp_min(1e-6)
