"""Reader for TensorFlow.js weight manifests (``*-weights_manifest.json`` plus ``.bin`` shards).

The shards of a manifest group are concatenated; tensors follow each other in manifest order,
little-endian, with no padding. A quantised tensor is stored as uint8 (or uint16) and decodes to
``q * scale + min``; the others are raw float32 (or int32).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "faces"

_DTYPES = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8, "uint16": np.uint16}


def _decode(buffer: memoryview, offset: int, spec: dict) -> tuple[np.ndarray, int]:
    """Decode one tensor described by ``spec`` at ``offset``; return it and the next offset."""
    shape = [int(s) for s in spec["shape"]]
    count = int(np.prod(shape)) if shape else 1
    quant = spec.get("quantization")
    stored = np.dtype(_DTYPES[quant["dtype"] if quant else spec["dtype"]]).newbyteorder("<")
    size = count * stored.itemsize
    if offset + size > len(buffer):
        raise ValueError(f"tfjs weights: {spec['name']} runs past the end of the shards")
    raw = np.frombuffer(buffer[offset : offset + size], dtype=stored)
    if quant:
        if "scale" not in quant:
            raise ValueError(f"tfjs weights: {spec['name']} uses an unsupported quantisation {quant}")
        values = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
    else:
        values = raw.astype(np.float32)
    return values.reshape(shape), offset + size


def load_manifest(manifest: str | Path) -> dict[str, torch.Tensor]:
    """Load every tensor of a tfjs weights manifest as float32 torch tensors, keyed by name.

    Shapes stay as TensorFlow stores them (HWIO filters, ``[in, out]`` dense weights).
    """
    manifest = Path(manifest)
    groups = json.loads(manifest.read_text())
    tensors: dict[str, torch.Tensor] = {}
    for group in groups:
        data = b"".join((manifest.parent / p).read_bytes() for p in group["paths"])
        view = memoryview(data)
        offset = 0
        for spec in group["weights"]:
            array, offset = _decode(view, offset, spec)
            tensors[spec["name"]] = torch.from_numpy(array.copy())
        if offset != len(data):
            raise ValueError(f"tfjs weights: {manifest.name} leaves {len(data) - offset} bytes unread")
    return tensors


def load_model(name: str) -> dict[str, torch.Tensor]:
    """Load one of the vendored face-api models by name, e.g. ``"face_recognition_model"``."""
    return load_manifest(ASSETS / f"{name}-weights_manifest.json")
