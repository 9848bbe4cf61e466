"""face-api's tiny face detector (``tiny_face_detector``, a Tiny-YOLOv2 with separable
convolutions) in PyTorch, with its box decoding and non-maximum suppression."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from embedding.faces.layers import Conv, SeparableConv, leaky, max_pool_same, square_pad, to_input
from embedding.faces.tfjs import load_model

MEAN_RGB = (117.001, 114.697, 97.404)
ANCHORS = ((1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061), (4.266906, 5.178857), (9.041765, 10.66308))
IOU_THRESHOLD = 0.4


@dataclass
class Detection:
    """One face: its box ``(left, top, right, bottom)`` in image pixels and its score."""

    box: tuple[float, float, float, float]
    score: float


class DetectorNet(nn.Module):
    """Normalised square input (a multiple of 32) -> ``[N, 25, S/32, S/32]`` raw box encodings
    (per cell, 5 anchors x (x, y, w, h, score))."""

    def __init__(self, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        weights = weights if weights is not None else load_model("tiny_face_detector_model")
        self.conv0 = Conv(weights, "conv0", padding="valid")
        self.seps = nn.ModuleList(SeparableConv(weights, f"conv{i}", padding="valid") for i in range(1, 6))
        self.head = Conv(weights, "conv8", padding="valid")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = max_pool_same(leaky(self.conv0(x)), 2, 2)
        for i, sep in enumerate(self.seps):
            x = leaky(sep(F.pad(x, (1, 1, 1, 1))))
            x = max_pool_same(x, 2, 2 if i < 4 else 1)
        return self.head(x)


def decode_boxes(raw: torch.Tensor, score_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes ``[K, 4]`` (left, top, right, bottom in [0, 1] of the square input) and scores ``[K]``
    of one image's raw output ``[25, S, S]`` above ``score_threshold``, after NMS."""
    cells = raw.shape[-1]
    enc = raw.view(len(ANCHORS), 5, cells, cells)
    anchors = raw.new_tensor(ANCHORS).view(-1, 2, 1, 1)
    steps = torch.arange(cells, device=raw.device)
    row, col = torch.meshgrid(steps, steps, indexing="ij")
    cx = (col + enc[:, 0].sigmoid()) / cells
    cy = (row + enc[:, 1].sigmoid()) / cells
    w = enc[:, 2].exp() * anchors[:, 0] / cells
    h = enc[:, 3].exp() * anchors[:, 1] / cells
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1).view(-1, 4)
    scores = enc[:, 4].sigmoid().reshape(-1)
    keep = scores > score_threshold
    boxes, scores = boxes[keep], scores[keep]
    keep = non_maximum_suppression(boxes, scores, IOU_THRESHOLD)
    return boxes[keep], scores[keep]


def non_maximum_suppression(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept, best first: each box that overlaps a better kept one by more than
    ``iou_threshold`` (intersection over union) is dropped."""
    area = (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
    order, keep = scores.argsort(descending=True), []
    while order.numel():
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = torch.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = torch.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = (bottom_right - top_left).clamp_min(0).prod(1)
        iou = inter / (area[best] + area[rest] - inter).clamp_min(1e-12)
        order = rest[iou <= iou_threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long, device=boxes.device)


@torch.no_grad()
def detect_faces(
    net: DetectorNet, image: torch.Tensor, input_size: int = 416, score_threshold: float = 0.5
) -> list[Detection]:
    """Faces in one image (RGB 0-255, ``[3, H, W]``), best first, boxes in the image's pixels.

    As face-api does, the image is zero-padded at the bottom/right to a square and resized to
    ``input_size`` (a multiple of 32; larger finds smaller faces, more slowly).
    """
    if input_size % 32:
        raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
    square = square_pad(image[None], centred=False)[0]
    raw = net(to_input(square, input_size, MEAN_RGB))[0]
    boxes, scores = decode_boxes(raw, score_threshold)
    side = square.shape[-1]
    return [Detection(tuple((b * side).tolist()), float(s)) for b, s in zip(boxes, scores, strict=True)]
