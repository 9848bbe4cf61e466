"""Write network pickles with the structure of NVIDIA's stylegan2-ada-pytorch snapshots, without NVIDIA's code.

An NVIDIA snapshot is ``{'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}``; every network
and sub-network in it is pickled as a call to ``torch_utils.persistence._reconstruct_persistent_obj(meta)``
where ``meta`` carries the class name, the source of the module defining it and the module's
``__dict__`` (parameters, buffers, child networks, constructor arguments). Stand-ins for
``torch_utils.persistence`` and ``dnnlib.util`` exist in ``sys.modules`` only while the pickle is
written, so the loader under test cannot import them.

The stored ``module_src`` would create ``executed_marker(path)`` and raise if anyone ran it.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from embedding.generators import Discriminator, Generator
from embedding.generators.ops import setup_filter

# The pickle protocol of the Python 3.7 that NVIDIA's snapshots were written with.
PROTOCOL = 3
PERSISTENCE_VERSION = 6  # torch_utils.persistence._version in NVIDIA's released code
VARIANTS = ("ada", "stylegan3-kwargs", "stylegan3-synthesis")
# NVIDIA registers the FIR filter as a persistent buffer of these classes.
_WITH_RESAMPLE_FILTER = {"SynthesisLayer", "SynthesisBlock", "Conv2dLayer", "DiscriminatorBlock"}
_HOOK_DICTS = ("_backward_hooks", "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks",
               "_load_state_dict_pre_hooks")


def executed_marker(path: Path) -> Path:
    """The file that the pickle's ``module_src`` creates when executed."""
    return Path(path).with_suffix(".module_src_was_executed")


def module_src(path: Path) -> str:
    """The source stored as ``module_src`` of every network in the pickle at ``path``."""
    return (f"import pathlib\npathlib.Path({str(executed_marker(path))!r}).touch()\n"
            "raise RuntimeError('module_src of a network pickle was executed')\n")


class _Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``."""

    def __init__(self, reconstruct: types.FunctionType, meta: dict) -> None:
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self) -> tuple:
        return self.reconstruct, (self.meta,)


@contextlib.contextmanager
def _fake_nvidia_modules() -> Iterator[types.SimpleNamespace]:
    """``torch_utils.persistence`` and ``dnnlib.util`` stand-ins, registered only inside the block."""
    names = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
    saved = {name: sys.modules.get(name) for name in names}
    modules = {name: types.ModuleType(name) for name in names}

    def _reconstruct_persistent_obj(meta: dict) -> None:
        raise AssertionError("the stand-in persistence module only exists for pickling")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    modules["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj
    modules["dnnlib.util"].EasyDict = EasyDict
    modules["torch_utils"].persistence = modules["torch_utils.persistence"]
    modules["dnnlib"].util = modules["dnnlib.util"]
    sys.modules.update(modules)
    try:
        yield types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Writer:
    def __init__(self, fake: types.SimpleNamespace, module_src: str) -> None:
        self.fake, self.module_src = fake, module_src

    def easy(self, value):
        """Nested dicts as ``dnnlib.util.EasyDict``, as NVIDIA's configs are."""
        if isinstance(value, dict):
            return self.fake.EasyDict({k: self.easy(v) for k, v in value.items()})
        return value

    def network(self, class_name: str, parameters: dict, buffers: dict, children: dict,
                init_kwargs: dict | None = None, attributes: dict | None = None) -> _Persistent:
        if class_name in _WITH_RESAMPLE_FILTER:
            buffers = {"resample_filter": setup_filter([1, 3, 3, 1]), **buffers}
        state = {
            "training": False,
            "_parameters": OrderedDict(parameters),
            "_buffers": OrderedDict(buffers),
            "_non_persistent_buffers_set": set(),
            **{name: OrderedDict() for name in _HOOK_DICTS},
            "_modules": OrderedDict(children),
            **(attributes or {}),
            "_init_args": (),
            "_init_kwargs": self.easy(init_kwargs or {}),
        }
        meta = dict(type="class", version=PERSISTENCE_VERSION, module_src=self.module_src, class_name=class_name,
                    state=state)
        return _Persistent(self.fake.reconstruct, meta)

    def module(self, module: nn.Module, init_kwargs: dict | None = None) -> _Persistent:
        """``module`` and its children as persistent objects (class and tensor names are already NVIDIA's)."""
        persistent_buffers = {k: v for k, v in module._buffers.items() if k not in module._non_persistent_buffers_set}
        children = {name: self.module(child) for name, child in module.named_children()}
        attributes = {k: v for k, v in vars(module).items()
                      if not k.startswith("_") and isinstance(v, int | float | str | bool | list | type(None))}
        return self.network(type(module).__name__, dict(module._parameters), persistent_buffers, children,
                            init_kwargs, attributes)

    def generator(self, g: Generator, variant: str, extra_synthesis_kwargs: dict) -> _Persistent:
        synthesis_kwargs = {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0, "conv_clamp": None,
                            **g.init_kwargs["synthesis_kwargs"], **extra_synthesis_kwargs}
        top = {k: g.init_kwargs[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
        top["mapping_kwargs"] = {"num_layers": 8, **g.init_kwargs["mapping_kwargs"]}
        if variant == "ada":
            init_kwargs = {**top, "synthesis_kwargs": synthesis_kwargs}
        else:
            init_kwargs = {**top, **synthesis_kwargs, "fused_modconv_default": "inference_only"}
        synthesis_init = {k: top[k] for k in ("w_dim", "img_resolution", "img_channels")} | synthesis_kwargs
        mapping_init = {k: top[k] for k in ("z_dim", "c_dim", "w_dim")} | {"num_ws": g.num_ws,
                                                                           **top["mapping_kwargs"]}
        synthesis = (self.stylegan3_synthesis(g) if variant == "stylegan3-synthesis"
                     else self.module(g.synthesis, synthesis_init))
        return self.network("Generator", {}, {}, {"mapping": self.module(g.mapping, mapping_init),
                                                  "synthesis": synthesis},
                            init_kwargs, {k: top[k] for k in ("z_dim", "c_dim", "w_dim", "img_resolution")})

    def stylegan3_synthesis(self, g: Generator) -> _Persistent:
        """An alias-free (StyleGAN3) synthesis network: Fourier-feature input, then layers ``L<i>_<size>_<ch>``."""
        w_dim, channels = g.w_dim, 32

        def affine(out_features: int) -> _Persistent:
            return self.network("FullyConnectedLayer", {"weight": torch.ones(out_features, w_dim),
                                                        "bias": torch.zeros(out_features)}, {}, {})

        children = {"input": self.network("SynthesisInput", {"weight": torch.ones(channels, channels)},
                                          {"transform": torch.eye(3), "freqs": torch.ones(channels, 2),
                                           "phases": torch.zeros(channels)}, {"affine": affine(4)})}
        for i, size in enumerate((36, 36, 52)):
            children[f"L{i}_{size}_{channels}"] = self.network(
                "SynthesisLayer", {"weight": torch.ones(channels, channels, 3, 3), "bias": torch.zeros(channels)},
                {"magnitude_ema": torch.ones([]), "up_filter": torch.ones(12), "down_filter": torch.ones(12)},
                {"affine": affine(channels)})
        return self.network("SynthesisNetwork", {}, {}, children,
                            {"w_dim": w_dim, "img_resolution": g.img_resolution, "img_channels": 3})

    def discriminator(self, d: Discriminator) -> _Persistent:
        kw = d.init_kwargs
        init_kwargs = {k: kw[k] for k in ("c_dim", "img_resolution", "img_channels")} | {
            "architecture": "resnet", "channel_base": kw["channel_base"], "channel_max": kw["channel_max"],
            "num_fp16_res": 0, "conv_clamp": kw["conv_clamp"], "block_kwargs": kw["block_kwargs"],
            "mapping_kwargs": kw["mapping_kwargs"], "epilogue_kwargs": {"mbstd_group_size": 4,
                                                                        **kw["epilogue_kwargs"]}}
        return self.module(d, init_kwargs)


def write_nvidia_pickle(path: str | Path, G: Generator, D: Discriminator, G_ema: Generator | None = None,
                        variant: str = "ada", extra_synthesis_kwargs: dict | None = None) -> Path:
    """Write ``{'G', 'D', 'G_ema', 'training_set_kwargs', 'augment_pipe'}`` as NVIDIA's training loop does.

    ``variant``: ``"ada"`` (stylegan2-ada-pytorch), ``"stylegan3-kwargs"`` (stylegan3's StyleGAN2
    generator, synthesis options as top-level constructor arguments) or ``"stylegan3-synthesis"``
    (an alias-free synthesis network with no ``b4``). ``extra_synthesis_kwargs`` are added to the
    generators' synthesis options. ``G_ema`` defaults to ``G``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    path = Path(path)
    with _fake_nvidia_modules() as fake:
        writer = _Writer(fake, module_src(path))
        extra = extra_synthesis_kwargs or {}
        data = {
            "G": writer.generator(G, variant, extra),
            "D": writer.discriminator(D),
            "G_ema": writer.generator(G if G_ema is None else G_ema, variant, extra),
            "training_set_kwargs": writer.easy({
                "class_name": "training.dataset.ImageFolderDataset", "path": "/data/faces.zip", "use_labels": False,
                "max_size": 70000, "xflip": True, "resolution": G.img_resolution}),
            "augment_pipe": None,
        }
        with open(path, "wb") as f:
            pickle.dump(data, f, protocol=PROTOCOL)
    return path
