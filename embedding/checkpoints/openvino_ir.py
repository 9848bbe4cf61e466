"""Read an OpenVINO IR (v10) network without OpenVINO: its layers, how they connect, and its constant tensors.

An IR is an ``.xml`` graph (layers with a type, a name and attributes; edges between their
ports) and a ``.bin`` file of raw little-endian constants that ``Const`` layers point into by
offset and size. Only data is read; nothing in either file is executed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedding.checkpoints.errors import CheckpointError

_DTYPES = {"f32": np.float32, "f16": np.float16, "i64": np.int64, "i32": np.int32}


@dataclass
class Layer:
    """One node: ``inputs`` are the ids of the layers feeding its input ports, in port order."""

    id: str
    name: str
    type: str
    data: dict[str, str]
    inputs: list[str] = field(default_factory=list)


class IRGraph:
    """The layers of an IR by id, with their producers and consumers, and its constants as tensors."""

    def __init__(self, xml: bytes, blob: bytes, xml_path: Path, bin_path: Path) -> None:
        """The graph of ``xml`` with the constants of ``blob`` (the contents of the two files, named in errors)."""
        self.xml_path, self.bin_path, self.blob = xml_path, bin_path, blob
        try:
            root = ET.fromstring(xml)
        except ET.ParseError as e:
            raise CheckpointError(xml_path, f"not a readable OpenVINO IR: {e}") from e
        if root.tag != "net" or root.find("layers") is None or root.find("edges") is None:
            raise CheckpointError(xml_path, "not an OpenVINO IR (no <net> with layers and edges)")
        self.layers: dict[str, Layer] = {}
        for node in root.find("layers"):
            data = node.find("data")
            self.layers[node.get("id")] = Layer(node.get("id"), node.get("name"), node.get("type"),
                                                dict(data.attrib) if data is not None else {})
        ports: dict[str, list[tuple[int, str]]] = {i: [] for i in self.layers}
        self.consumers: dict[str, list[str]] = {i: [] for i in self.layers}
        for edge in root.find("edges"):
            src, dst = edge.get("from-layer"), edge.get("to-layer")
            if src not in self.layers or dst not in self.layers:
                raise CheckpointError(xml_path, f"an edge joins unknown layers {src} → {dst}")
            ports[dst].append((int(edge.get("to-port")), src))
            self.consumers[src].append(dst)
        for i, layer in self.layers.items():
            layer.inputs = [src for _, src in sorted(ports[i])]

    def of_type(self, kind: str) -> list[Layer]:
        """The layers of one type, in file order (the IR lists them in execution order)."""
        return [layer for layer in self.layers.values() if layer.type == kind]

    def producer(self, layer: Layer, port: int = 0) -> Layer:
        return self.layers[layer.inputs[port]]

    def users(self, layer: Layer) -> list[Layer]:
        return [self.layers[i] for i in self.consumers[layer.id]]

    def constant(self, layer: Layer) -> torch.Tensor:
        """The tensor of a ``Const`` layer, read from the ``.bin`` file (its shape checked against its size)."""
        if layer.type != "Const":
            raise CheckpointError(self.xml_path, f"layer {layer.name!r} is a {layer.type}, not a constant")
        d = layer.data
        dtype = _DTYPES.get(d.get("element_type"))
        if dtype is None:
            raise CheckpointError(self.xml_path, f"constant {layer.name!r} has an unsupported type "
                                                 f"{d.get('element_type')}")
        shape = [int(s) for s in d.get("shape", "").replace(" ", "").split(",") if s]
        offset, size = int(d["offset"]), int(d["size"])
        count = int(np.prod(shape, dtype=np.int64))
        if offset < 0 or offset + size > len(self.blob) or size != count * np.dtype(dtype).itemsize:
            raise CheckpointError(self.bin_path, f"constant {layer.name!r} ({size} bytes at {offset}) does not fit "
                                                 f"this {len(self.blob)}-byte file or its shape {shape}")
        stored = np.dtype(dtype).newbyteorder("<")
        return torch.from_numpy(np.frombuffer(self.blob, stored, count, offset).astype(dtype).reshape(shape))

    def constant_input(self, layer: Layer, port: int) -> torch.Tensor:
        """The constant feeding ``layer``'s input ``port`` (an error names the layer when it is not one)."""
        return self.constant(self.producer(layer, port))
