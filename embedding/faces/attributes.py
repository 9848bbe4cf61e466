"""face-api's attribute networks in PyTorch: age and gender (``age_gender``, a tiny Xception) and
facial expression (``face_expression``, the landmark net's dense feature extractor)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedding.faces.crop import WHOLE, FaceBox, crop_face
from embedding.faces.landmarks import INPUT_SIZE, DenseFeatureExtractor, Linear
from embedding.faces.layers import Conv, SeparableConv, from_unit, max_pool_same, shared_net, square_pad, to_input
from embedding.faces.tfjs import load_model

EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
# One number per face from face_attributes' output: what attribute directions and edits are scored by.
ATTRIBUTE_SCORES = {"age": lambda a: a["age"], "male": lambda a: a["gender_prob"],
                    "smile": lambda a: a["expression"][:, EXPRESSIONS.index("happy")]}


class ReductionBlock(nn.Module):
    """Two separable convolutions and a 3x3/2 max pool, plus a strided 1x1 shortcut."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str, activate_input: bool = True):
        super().__init__()
        self.sep0 = SeparableConv(weights, f"{prefix}/separable_conv0")
        self.sep1 = SeparableConv(weights, f"{prefix}/separable_conv1")
        self.shortcut = Conv(weights, f"{prefix}/expansion_conv", stride=2)
        self.activate_input = activate_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.sep0(F.relu(x) if self.activate_input else x)
        out = max_pool_same(self.sep1(F.relu(out)), 3, 2)
        return out + self.shortcut(x)


class MainBlock(nn.Module):
    """Three pre-activated separable convolutions with an identity shortcut."""

    def __init__(self, weights: dict[str, torch.Tensor], prefix: str):
        super().__init__()
        self.seps = nn.ModuleList(SeparableConv(weights, f"{prefix}/separable_conv{i}") for i in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for sep in self.seps:
            out = sep(F.relu(out))
        return out + x


class AgeGenderNet(nn.Module):
    """Normalised 112x112 crops -> (age in years ``[N]``, gender logits ``[N, 2]`` as (male, female))."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        weights = weights if weights is not None else load_model("age_gender_model")
        self.conv_in = Conv(weights, "entry_flow/conv_in", stride=2)
        self.blocks = nn.Sequential(
            ReductionBlock(weights, "entry_flow/reduction_block_0", activate_input=False),
            ReductionBlock(weights, "entry_flow/reduction_block_1"),
            MainBlock(weights, "middle_flow/main_block_0"),
            MainBlock(weights, "middle_flow/main_block_1"),
            ReductionBlock(weights, "exit_flow/reduction_block"),
        )
        self.exit = SeparableConv(weights, "exit_flow/separable_conv")
        self.age = Linear(weights, "fc/age")
        self.gender = Linear(weights, "fc/gender")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.exit(self.blocks(F.relu(self.conv_in(x)))))
        pooled = F.avg_pool2d(x, 7, 2).flatten(1)
        return self.age(pooled)[:, 0], self.gender(pooled)


class ExpressionNet(nn.Module):
    """Normalised 112x112 crops -> logits over :data:`EXPRESSIONS`."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        weights = weights if weights is not None else load_model("face_expression_model")
        self.features = DenseFeatureExtractor(weights)
        self.fc = Linear(weights, "fc")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class AttributeNets(nn.Module):
    """Both attribute networks together, for :func:`face_attributes`."""

    def __init__(self):
        super().__init__()
        self.age_gender = AgeGenderNet()
        self.expression = ExpressionNet()


def face_attributes(images: torch.Tensor, nets: AttributeNets | None = None,
                    box: FaceBox = WHOLE) -> dict[str, torch.Tensor]:
    """Age, gender and expression of faces (NCHW RGB in [-1, 1], like generator output), read in their
    ``box`` region (:mod:`embedding.faces.crop`; the networks expect face-box framed crops).

    Returns ``age`` (years, ``[N]``), ``gender_prob`` (probability of male, ``[N]``) and
    ``expression`` (``[N, 7]`` probabilities over :data:`EXPRESSIONS`). Differentiable.
    """
    nets = nets if nets is not None else shared_net(AttributeNets, images.device)
    x = to_input(square_pad(from_unit(crop_face(images, box)))[0], INPUT_SIZE)
    age, gender = nets.age_gender(x)
    return {
        "age": age,
        "gender_prob": gender.softmax(dim=1)[:, 0],
        "expression": nets.expression(x).softmax(dim=1),
    }
