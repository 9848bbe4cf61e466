"""face-api's face descriptor (``face_recognition``, the dlib ResNet-29 port) in PyTorch.

150x150 input -> 128-D descriptor; Euclidean distance between descriptors measures identity
(dlib's usual threshold for "same person" is 0.6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedding.faces.crop import WHOLE, FaceBox, crop_face
from embedding.faces.layers import from_unit, pad_same, shared_net, square_pad, to_input
from embedding.faces.tfjs import load_model

INPUT_SIZE = 150


class ScaledConv(nn.Module):
    """Convolution + bias, then a per-channel affine 'scale' layer (dlib's folded batch norm)."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, stride: int = 1, padding: str = "same"):
        super().__init__()
        filters = weights[f"{prefix}/conv/filters"].permute(3, 2, 0, 1).contiguous()
        self.register_buffer("weight", filters)
        self.register_buffer("bias", weights[f"{prefix}/conv/bias"])
        self.register_buffer("scale", weights[f"{prefix}/scale/weights"].view(1, -1, 1, 1))
        self.register_buffer("shift", weights[f"{prefix}/scale/biases"].view(1, -1, 1, 1))
        self.stride = stride
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            x = pad_same(x, self.weight.shape[-1], self.stride)
        return F.conv2d(x, self.weight, self.bias, self.stride) * self.scale + self.shift


class Residual(nn.Module):
    """Two 3x3 convolutions plus the input; the 'down' variant halves the size ('valid' padding)
    and adds a 2x2 average pool of the input, zero-extended to the new channel count."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, down: bool = False):
        super().__init__()
        self.conv1 = ScaledConv(weights, f"{prefix}/conv1", *((2, "valid") if down else (1, "same")))
        self.conv2 = ScaledConv(weights, f"{prefix}/conv2")
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
            # The 'valid' convolution can come out a pixel short of the pool: zeros at bottom/right.
            out = F.pad(out, (0, x.shape[-1] - out.shape[-1], 0, x.shape[-2] - out.shape[-2]))
            if x.shape[1] != out.shape[1]:
                x = torch.cat([x, torch.zeros_like(x)], dim=1)
        return F.relu(out + x)


_STAGES = (
    ("conv32", ("1", "2", "3")),
    ("conv64", ("down", "1", "2", "3")),
    ("conv128", ("down", "1", "2")),
    ("conv256", ("down", "1", "2", "down_out")),
)


class DescriptorNet(nn.Module):
    """Normalised 150x150 face crops -> ``[N, 128]`` descriptors."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        weights = weights if weights is not None else load_model("face_recognition_model")
        self.stem = ScaledConv(weights, "conv32_down", stride=2, padding="valid")
        self.stages = nn.ModuleList(
            nn.Sequential(*(Residual(weights, f"{stage}_{name}", down="down" in name) for name in names))
            for stage, names in _STAGES
        )
        self.register_buffer("fc", weights["fc"])

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of the stem and of each residual stage (35², 35², 17², 8², 2² at 150²)."""
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        maps = [x]
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x)[-1].mean(dim=(2, 3)) @ self.fc


def compute_descriptors(net: DescriptorNet, crops: torch.Tensor) -> torch.Tensor:
    """128-D descriptors of face crops (RGB 0-255, NCHW, any size; non-square ones centre-padded)."""
    return net(to_input(square_pad(crops)[0], INPUT_SIZE))


def face_descriptors(images: torch.Tensor, box: FaceBox = WHOLE) -> torch.Tensor:
    """Descriptors ``[N, 128]`` of face images in [-1, 1] (the generator's range), the ``box`` region
    (:mod:`embedding.faces.crop`) taken as the face crop. Differentiable; the network is loaded once per device."""
    return compute_descriptors(shared_net(DescriptorNet, images.device), from_unit(crop_face(images.float(), box)))


def identity_distance(a: torch.Tensor, b: torch.Tensor, box: FaceBox = WHOLE) -> torch.Tensor:
    """Per-image Euclidean distance ``[N]`` between the descriptors of two batches of faces in
    [-1, 1] (their ``box`` region); below about 0.6 dlib's descriptor takes two faces for the same person."""
    return (face_descriptors(a, box) - face_descriptors(b, box)).norm(dim=1)


def face_features(images: torch.Tensor) -> list[torch.Tensor]:
    """Intermediate feature maps of the descriptor network for images in [-1, 1], for a
    perceptual loss on a face network: the stem and the four residual stages at 150²."""
    net = shared_net(DescriptorNet, images.device)
    return net.feature_maps(to_input(square_pad(from_unit(images.float()))[0], INPUT_SIZE))
