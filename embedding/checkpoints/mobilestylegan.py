"""``mobilestylegan-ffhq``: MobileStyleGAN's FFHQ 1024² weights, where they live, how they are checked and read.

The weights are the OpenVINO IR files of the PyPI wheel ``random-face`` 2021.7.21.1
(``random_face/data/{Mapping,Synthesis}Network.{xml,bin}``). ``embed fetch mobilestylegan-ffhq``
downloads the wheel once and keeps the four files in the cache (:func:`folder`); every load
checks their SHA-256 and reads the IR directly (no OpenVINO), turning it into the state dict of
:class:`~embedding.generators.mobilestylegan.MobileStyleGAN`. The mean latent is computed once
from many random latents and cached beside them. They are never part of this repository.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import zipfile
from pathlib import Path

import torch

from embedding.checkpoints.errors import CheckpointError
from embedding.checkpoints.openvino_ir import IRGraph
from embedding.files import atomic_write
from embedding.generators.mobilestylegan import MobileStyleGAN
from embedding.user_cache import CACHE_ENV, cache_root, pip_download

NAME = "mobilestylegan-ffhq"
FETCH_COMMAND = f"embed fetch {NAME}"
PACKAGE = "random-face==2021.7.21.1"
FILES = {
    "MappingNetwork.xml": "73e2096cad6e696e4af47df2477e048ab4c42c0e0dec83c7c66604822689e55b",
    "MappingNetwork.bin": "212dd716bdb556e18db603ea97300d4fa3c872b878c726b2402fea80820e7305",
    "SynthesisNetwork.xml": "7918fce515243954d3e06628cb39a23902d6b1d5d02932cc0c2faee7a2aeeedd",
    "SynthesisNetwork.bin": "c7da15fa22d508c82e1c30dd6b4cdf67fe3ccdddaf85b310ee764dbf0c289645",
}
WHEEL_FOLDER = "random_face/data"
W_AVG_FILE = "w_avg.pt"
W_AVG_SAMPLES = 100_000
LICENCE = f"""\
{NAME}: MobileStyleGAN (S. Belousov, 2021, arXiv:2104.04767), FFHQ 1024², from the PyPI wheel {PACKAGE}.
  Research and evaluation use only. Its synthesis network was distilled from NVIDIA's StyleGAN2
  config-f FFHQ generator and its mapping network is NVIDIA's, whose weights are under the NVIDIA
  Source Code License-NC (non-commercial). The random-face code itself is Apache-2.0; FFHQ images
  are under their own licences. The files stay in your cache and are never part of this project.
"""
log = logging.getLogger(__name__)


def folder() -> Path:
    """Where the four IR files (and the cached mean latent) of ``mobilestylegan-ffhq`` live."""
    return cache_root() / NAME


def is_fetched() -> bool:
    """Whether the four IR files are in the cache (not checked against their SHA-256: that is for loading)."""
    return all((folder() / name).is_file() for name in FILES)


def weights_file() -> Path:
    """The file whose SHA-256 latents records keep for this generator (the synthesis weights)."""
    return folder() / "SynthesisNetwork.bin"


def read_verified(path: Path) -> bytes:
    """The contents of one of the four files, after checking its SHA-256; errors say how to get it again."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the {NAME} weights are not in the cache ({path.parent}); "
                                f"get them once with `{FETCH_COMMAND}` (downloads 38 MB from PyPI), or point "
                                f"${CACHE_ENV} at a cache that has them")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != FILES[path.name]:
        raise CheckpointError(path, f"SHA-256 {digest[:16]}… is not the expected {FILES[path.name][:16]}… (truncated "
                                    f"or altered); run `{FETCH_COMMAND}` again")
    return data


def read_graph(network: str) -> IRGraph:
    """The verified IR of ``"Mapping"`` or ``"Synthesis"`` from the cache."""
    xml, weights = folder() / f"{network}Network.xml", folder() / f"{network}Network.bin"
    return IRGraph(read_verified(xml), read_verified(weights), xml, weights)


def read() -> tuple[dict, dict[str, torch.Tensor], Path]:
    """Constructor kwargs, the state dict (mapping and synthesis) and the file errors should name."""
    with torch.device("meta"):
        reference = MobileStyleGAN()  # shapes and gains only
    synthesis = read_graph("Synthesis")
    state = {**mapping_state(read_graph("Mapping"), reference.mapping),
             **synthesis_state(synthesis, reference.synthesis.state_dict())}
    return {}, state, synthesis.xml_path


def mapping_state(graph: IRGraph, reference: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``mapping.fc<i>.weight/bias`` from the IR's MatMul + Add pairs, the equalised-lr gains divided out."""
    matmuls = graph.of_type("MatMul")
    if len(matmuls) != reference.num_layers:
        raise CheckpointError(graph.xml_path, f"expected {reference.num_layers} fully connected layers, "
                                              f"found {len(matmuls)}")
    state = {}
    for i, matmul in enumerate(matmuls):
        fc = getattr(reference, f"fc{i}")
        (add,) = [user for user in graph.users(matmul) if user.type == "Add"]
        state[f"mapping.fc{i}.weight"] = graph.constant_input(matmul, 1) / fc.weight_gain
        state[f"mapping.fc{i}.bias"] = graph.constant_input(graph.producer(add, 1), 0) / fc.bias_gain
    return state


def synthesis_state(graph: IRGraph, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The synthesis state dict: named constants as they are, plus what the export left unnamed.

    Unnamed are the pointwise weights (with the fixed demodulation folded in) after each depthwise
    convolution, the first layer's 3×3 weight, and the noise maps, baked in already multiplied by
    their strength: each is split into a strength (its root mean square) and a unit-variance map.
    """
    state = {f"synthesis.{layer.name[2:]}": graph.constant(layer)
             for layer in graph.of_type("Const") if layer.name.startswith("m.")}
    for conv in graph.of_type("Convolution"):
        source = graph.producer(conv, 0)
        if source.type == "GroupConvolution":
            prefix = graph.producer(source, 1).name[2:].removesuffix(".conv.weight_dw")
            state[f"synthesis.{prefix}.conv.weight_permute"] = graph.constant_input(conv, 1)
        elif graph.producer(conv, 1).name.startswith("m."):
            continue
        else:
            prefix = "conv1"
            state["synthesis.conv1.conv.weight"] = graph.constant_input(conv, 1)
        noise = next((graph.constant_input(add, 1) for add in graph.users(conv)
                      if add.type == "Add" and graph.producer(add, 1).type == "Const"), None)
        if noise is None:
            raise CheckpointError(graph.xml_path, f"no noise map after the convolution of {prefix}")
        strength = noise.square().mean().sqrt()
        state[f"synthesis.{prefix}.noise.weight"] = strength.reshape(1)
        state[f"synthesis.{prefix}.noise.noise"] = noise / strength if strength > 0 else noise
    return {key: _fit(graph, key, value, expected) for key, value in state.items()}


def _fit(graph: IRGraph, key: str, value: torch.Tensor, expected: dict) -> torch.Tensor:
    """``value`` in the port's layout (the IR keeps singleton axes of its own); unknown keys fail later, by name."""
    want = expected.get(key.removeprefix("synthesis."))
    if want is None:
        return value
    if value.numel() != want.numel():
        raise CheckpointError(graph.xml_path, f"{key} has {list(value.shape)}, the network expects {list(want.shape)}")
    return value.reshape(want.shape)


def cached_w_avg(generator: MobileStyleGAN) -> torch.Tensor:
    """The mean of ``W_AVG_SAMPLES`` mapped latents, read from the cache or computed once and cached there."""
    path = folder() / W_AVG_FILE
    key = {"samples": W_AVG_SAMPLES, "mapping_sha256": FILES["MappingNetwork.bin"]}
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if {k: stored.get(k) for k in key} == key and stored["w_avg"].shape == (generator.w_dim,):
            return stored["w_avg"].float()
    except FileNotFoundError:
        pass
    except Exception as e:  # torch raises many types for corrupt files
        log.warning("%s is unreadable (%s); computing the mean latent again", path, e)
    log.info("computing the mean latent of %s from %d random latents (once)", NAME, W_AVG_SAMPLES)
    w_avg = generator.mapping.mean_latent(W_AVG_SAMPLES)
    try:
        atomic_write(path, lambda f: torch.save({**key, "w_avg": w_avg.cpu()}, f))
    except OSError as e:
        log.warning("could not cache the mean latent at %s: %s", path, e)
    return w_avg


def install(wheel: Path) -> Path:
    """Copy the four IR files out of the ``random-face`` wheel into the cache, each checked before it is written."""
    where = folder()
    try:
        with zipfile.ZipFile(wheel) as archive:
            contents = {name: archive.read(f"{WHEEL_FOLDER}/{name}") for name in FILES}
    except (OSError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(wheel, f"not the {PACKAGE} wheel ({e})") from e
    for name, data in contents.items():
        digest = hashlib.sha256(data).hexdigest()
        if digest != FILES[name]:
            raise CheckpointError(wheel, f"{name} has SHA-256 {digest[:16]}…, expected {FILES[name][:16]}…: "
                                         f"not the {PACKAGE} release")
    where.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        atomic_write(where / name, lambda f, data=data: f.write(data))
    return where


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps random-face==2021.7.21.1`` into ``dest``; the wheel's path."""
    return pip_download(PACKAGE, "--only-binary", "random_face-*.whl", dest, "on a machine without network, download "
                        f"the wheel elsewhere and pass it: {FETCH_COMMAND} --wheel random_face-...whl")


def fetch(wheel: Path | None = None) -> Path:
    """Put the verified IR files in the cache, from ``wheel`` or a fresh download; the cache folder."""
    if wheel is not None:
        return install(Path(wheel))
    with tempfile.TemporaryDirectory(prefix="random-face-") as tmp:
        return install(download_wheel(Path(tmp)))
