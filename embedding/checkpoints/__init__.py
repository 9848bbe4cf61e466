"""Load StyleGAN2 generators and discriminators from official files, rosinality files or the project's format.

``source`` is a path to an NVIDIA ``.pkl``, a rosinality ``.pt``, a project ``.pt`` (with its
``.json``), the name of the embedded default (``"default"``) or ``"mobilestylegan-ffhq"``
(MobileStyleGAN's FFHQ 1024² generator, fetched once into the cache). No format ever executes code
stored in the file. Every failure raises ``CheckpointError`` (or ``FileNotFoundError``) naming
the file.
"""

from __future__ import annotations

import difflib
import os
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from embedding.checkpoints import mobilestylegan, native, nvidia, rosinality
from embedding.checkpoints.errors import CheckpointError
from embedding.files import sha256
from embedding.generators import Discriminator, Generator, GeneratorBase
from embedding.generators.mobilestylegan import MobileStyleGAN
from embedding.methods.swapping.model import SwappingAutoencoder

__all__ = ["CheckpointError", "build_network", "load_discriminator", "load_generator", "load_swapping_autoencoder",
           "save_discriminator", "save_generator", "save_swapping_autoencoder", "resolve_file", "DEFAULT_NAME",
           "GENERATOR_ONLY", "companion_discriminator", "provenance", "known_names"]

DEFAULT_NAME = "default"
_ARCHITECTURES = {"stylegan2": Generator, "mobilestylegan": MobileStyleGAN}   # of project-format generators
GENERATOR_ONLY = {mobilestylegan.NAME: mobilestylegan.weights_file}   # named generators without a discriminator
_DEFAULT_FILES = {"generator": "default_generator.pt", "discriminator": "default_discriminator.pt",
                  "swapping_autoencoder": "default_swapping_autoencoder.pt", "encoder": "default_encoder.pt"}


def default_path(kind: str) -> Path:
    """Where the embedded default network of ``kind`` is shipped inside the package."""
    return Path(str(resources.files("embedding") / "assets" / _DEFAULT_FILES[kind]))


def resolve_file(source: str | os.PathLike, kind: str) -> Path:
    """The existing file ``source`` names (``"default"``: the packaged network of ``kind``); errors name it."""
    if str(source) in GENERATOR_ONLY:
        if kind != "generator":
            raise FileNotFoundError(f"{source} is a generator alone: it comes with no {kind} (name a {kind} "
                                    "file of your own for what needs one)")
        path = GENERATOR_ONLY[str(source)]()
        if not path.is_file():
            raise FileNotFoundError(f"{source} is not in the cache ({path.parent}); get it once with "
                                    f"`embed fetch {source}`")
        return path
    if str(source) == DEFAULT_NAME:
        path = default_path(kind)
        if not path.is_file():
            raise FileNotFoundError(f"the embedded default {kind} is missing from this installation ({path}); "
                                    "pass the path of a checkpoint instead")
        return path
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {source} (neither a file nor a known name). "
                                f"{known_names_hint(str(source), kind)}")
    return path


def known_names(kind: str) -> dict[str, str]:
    """The names a network of ``kind`` may be given by, each with where it comes from (shipped, or fetched or not)."""
    names = {DEFAULT_NAME: "ships with the package"}
    if kind == "generator":
        for name in GENERATOR_ONLY:
            fetched = "yes" if mobilestylegan.is_fetched() else f"no — embed fetch {name}"
            names[name] = f"fetched: {fetched}"
    return names


def known_names_hint(source: str, kind: str) -> str:
    """``Known names: ...`` for a ``kind`` network, and the nearest to ``source`` when one is close."""
    names = known_names(kind)
    listing = ", ".join(f"{name} ({where})" for name, where in names.items())
    close = difflib.get_close_matches(Path(source).name, list(names), n=1, cutoff=0.6)
    return f"Known names: {listing}." + (f" Did you mean {close[0]}?" if close else "")


def provenance(source: str | os.PathLike, kind: str = "generator", key: str = "generator") -> dict[str, str]:
    """How records name a network: ``{key: source, key_sha256: the SHA-256 of its file}`` (errors name the file)."""
    return {key: str(source), f"{key}_sha256": sha256(resolve_file(source, kind))}


def load_generator(source: str | os.PathLike = DEFAULT_NAME, network: str = "G_ema",
                   device: str | torch.device = "cpu") -> GeneratorBase:
    """The generator in ``source`` (``network`` picks ``G_ema`` or ``G`` inside NVIDIA pickles), frozen, eval mode."""
    if str(source) == mobilestylegan.NAME:
        kwargs, state, path = mobilestylegan.read()
        generator = build_network(MobileStyleGAN, kwargs, state, path)
        generator.mapping.w_avg.copy_(mobilestylegan.cached_w_avg(generator))
        return generator.to(device)
    path = resolve_file(source, "generator")
    architecture = Generator
    if path.suffix == ".pkl":
        data = nvidia.read_pickle(path)
        net = nvidia.network(data, network, path)
        kwargs, state = nvidia.generator_kwargs(net, path), net.state_dict()
    elif native.is_native(path):
        kwargs, state, _ = native.read(path, "generator")
        architecture = _ARCHITECTURES.get(native.architecture(path))
        if architecture is None:
            raise CheckpointError(path, f"unknown generator architecture {native.architecture(path)!r}; "
                                        f"known: {', '.join(_ARCHITECTURES)}")
    else:
        data = rosinality.read(path)
        g = data.get("g_ema" if network == "G_ema" else "g")
        if not isinstance(g, dict) or not rosinality.is_rosinality_generator(g):
            raise CheckpointError(path, "neither a project checkpoint (no .json beside it) nor a rosinality "
                                        "checkpoint with a 'g_ema' generator")
        kwargs, state = rosinality.generator_state(g, data.get("latent_avg"))
    generator = build_network(architecture, kwargs, state, path)
    if "mapping.w_avg" not in state:
        generator.mapping.w_avg.copy_(generator.mapping.mean_latent())
    return generator.to(device)


def load_discriminator(source: str | os.PathLike = DEFAULT_NAME, device: str | torch.device = "cpu") -> Discriminator:
    """The discriminator in ``source`` (``D`` in NVIDIA pickles, ``d`` in rosinality files), frozen, eval mode.

    For a generator in the project's format, the discriminator ``embed convert`` wrote beside it
    (``<stem>_discriminator.pt``) is taken.
    """
    path = companion_discriminator(resolve_file(source, "discriminator"))
    if path.suffix == ".pkl":
        net = nvidia.network(nvidia.read_pickle(path), "D", path)
        kwargs, state = nvidia.discriminator_kwargs(net, path), net.state_dict()
    elif native.is_native(path):
        kwargs, state, _ = native.read(path, "discriminator")
    else:
        d = rosinality.read(path).get("d")
        if not isinstance(d, dict):
            raise CheckpointError(path, "no discriminator ('d') in this checkpoint")
        kwargs, state = rosinality.discriminator_state(d)
    return build_network(Discriminator, kwargs, state, path).to(device)


def companion_discriminator(path: Path) -> Path:
    """``path``, or for a project-format generator the ``<stem>_discriminator.pt`` written beside it."""
    if not native.is_native(path) or native.kind_of(path) != "generator":
        return path
    beside = path.with_name(f"{path.stem}_discriminator{path.suffix}")
    if not beside.is_file():
        raise CheckpointError(path, f"holds a generator and no discriminator was saved beside it ({beside.name})")
    return beside


def save_generator(generator: Generator, path: str | os.PathLike, dtype: torch.dtype | None = None,
                   metadata: dict | None = None) -> Path:
    """Write ``generator`` in the project's format (``path`` ``.pt`` + ``.json``)."""
    return native.save(generator, "generator", path, dtype, metadata)


def save_discriminator(discriminator: Discriminator, path: str | os.PathLike, dtype: torch.dtype | None = None,
                       metadata: dict | None = None) -> Path:
    """Write ``discriminator`` in the project's format (``path`` ``.pt`` + ``.json``)."""
    return native.save(discriminator, "discriminator", path, dtype, metadata)


def load_swapping_autoencoder(source: str | os.PathLike = DEFAULT_NAME,
                              device: str | torch.device = "cpu") -> SwappingAutoencoder:
    """A Swapping Autoencoder (encoder and generator) in the project's format, or the embedded default; eval mode."""
    path = resolve_file(source, "swapping_autoencoder")
    if not native.is_native(path):
        raise CheckpointError(path, "not a project checkpoint (no .json beside it)")
    kwargs, state, _ = native.read(path, "swapping_autoencoder")
    return build_network(SwappingAutoencoder, kwargs, state, path).to(device)


def save_swapping_autoencoder(net: SwappingAutoencoder, path: str | Path, dtype: torch.dtype | None = None,
                              metadata: dict | None = None) -> Path:
    """Write a Swapping Autoencoder in the project's format (``.pt`` weights + ``.json`` config)."""
    return native.save(net, "swapping_autoencoder", path, dtype, metadata)


def build_network(cls: type[nn.Module], kwargs: dict, state: dict, path: Path) -> nn.Module:
    """Instantiate ``cls`` and load ``state`` strictly, naming the first bad key."""
    try:
        net = cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"unsupported architecture: {e}") from e
    state = {k: v for k, v in state.items() if not k.endswith("resample_filter")}
    expected = net.state_dict()
    optional = {"mapping.w_avg"}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise CheckpointError(path, f"{detail} ({len(missing)} missing, {len(unexpected)} unexpected)")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != expected[key].shape:
            got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(path, f"shape mismatch for {key!r}: file has {got}, "
                                        f"network expects {list(expected[key].shape)}")
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return net.eval().requires_grad_(False)
