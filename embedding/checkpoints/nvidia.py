"""Read NVIDIA's network pickles (stylegan2-ada-pytorch, and stylegan3 files holding StyleGAN2 networks).

NVIDIA's loader rebuilds each network by executing the Python source stored in the pickle. This
reader never does: a restricted unpickler resolves only an allow-list of globals (tensor and
storage rebuilders, plain containers, numeric numpy scalars and arrays) and turns each pickled
network into a ``PickledNetwork`` record of its class name, constructor arguments, parameters and
buffers. Anything else in the file is refused with an error that names it.

Real snapshots hold numpy scalars (``weight_gain``, ``act_gain`` are ``numpy.float64``), pickled as
``numpy.core.multiarray.scalar(numpy.dtype(...), bytes)`` (``numpy._core`` when written under numpy
2). These are rebuilt here from their bytes by stand-ins that accept numeric dtypes only, so no
numpy reconstructor ever runs on the file's say-so.
"""

from __future__ import annotations

import collections
import io
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedding.checkpoints.errors import CheckpointError

PERSISTENT_RECONSTRUCT = ("torch_utils.persistence", "_reconstruct_persistent_obj")


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access) inside pickles."""


class _Refused(pickle.UnpicklingError):
    """Something in the pickle that a network snapshot never contains."""


_NUMERIC_CODE = re.compile(r"[?bBhHiIlLqQefdgFDG]|[biufc]\d{1,2}")


class NumpyDType:
    """A pickled ``numpy.dtype``, restricted to plain numeric types (no object, string or structured dtypes)."""

    def __init__(self, code: Any, align: bool = False, copy: bool = True) -> None:
        if not isinstance(code, str) or not _NUMERIC_CODE.fullmatch(code):
            raise _Refused(f"numpy dtype {code!r} is not a plain numeric type")
        self.dtype = np.dtype(code)
        if self.dtype.kind not in "biufc":
            raise _Refused(f"numpy dtype {code!r} is not a plain numeric type")

    def __setstate__(self, state: Any) -> None:
        """Numpy's dtype state: ``(version, byte order, subarray, names, fields, ...)``; only the order may vary."""
        if not isinstance(state, tuple) or len(state) < 5 or any(x is not None for x in state[2:5]):
            raise _Refused("a structured or sub-array numpy dtype")
        if state[1] not in ("<", ">", "|", "="):
            raise _Refused(f"numpy byte order {state[1]!r}")
        self.dtype = self.dtype.newbyteorder(state[1])


def _numpy_scalar(dtype: Any, data: Any) -> int | float | complex | bool:
    """A pickled numpy scalar (``numpy.float64`` etc.), returned as the equal Python number."""
    if not isinstance(dtype, NumpyDType) or not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise _Refused("a numpy scalar that is not a plain number")
    return np.frombuffer(data, dtype=dtype.dtype)[0].item()


class NumpyArray:
    """A pickled numeric ``numpy.ndarray``; ``value`` holds the array once its state is set."""

    def __init__(self, subtype: Any, shape: Any, typecode: Any) -> None:
        if subtype is not np.ndarray:
            raise _Refused("a numpy array of a subclass")
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        """Numpy's array state: ``(version, shape, dtype, fortran order, raw bytes)``."""
        if not isinstance(state, tuple) or len(state) != 5:
            raise _Refused("a numpy array with unexpected state")
        _, shape, dtype, fortran, raw = state
        if not isinstance(dtype, NumpyDType) or not isinstance(raw, bytes):
            raise _Refused("a numpy array that is not plain numbers")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise _Refused(f"a numpy array of shape {shape!r}")
        if int(np.prod(shape)) * dtype.dtype.itemsize != len(raw):
            raise _Refused("a numpy array whose data does not match its shape")
        flat = np.frombuffer(raw, dtype=dtype.dtype)
        self.value = flat.reshape(shape, order="F" if fortran else "C").copy()


def _numpy_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> NumpyArray:
    """A numeric array pickled with protocol 5 (``numpy._core.numeric._frombuffer``)."""
    array = NumpyArray(np.ndarray, (0,), b"b")
    array.__setstate__((1, shape, dtype, order == "F", bytes(buffer) if isinstance(buffer, bytearray) else buffer))
    return array


def _plain(value: Any) -> Any:
    """``value`` with numpy arrays as lists and tuples kept, for constructor arguments."""
    if isinstance(value, NumpyArray):
        return None if value.value is None else value.value.tolist()
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


class PickledNetwork:
    """One network from an NVIDIA pickle: class name, init kwargs, own tensors and child networks."""

    def __init__(self, meta: dict) -> None:
        state = meta.get("state") or {}
        self.class_name: str = meta.get("class_name", "?")
        self.init_kwargs: dict = _plain(dict(state.get("_init_kwargs") or {}))
        self.parameters: dict = dict(state.get("_parameters") or {})
        self.buffers: dict = dict(state.get("_buffers") or {})
        self.children: dict = dict(state.get("_modules") or {})

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Flatten the tensors of this network and its children under dotted names."""
        out = {prefix + k: v.detach() for k, v in {**self.parameters, **self.buffers}.items() if v is not None}
        for name, child in self.children.items():
            if isinstance(child, PickledNetwork):
                out.update(child.state_dict(f"{prefix}{name}."))
        return out


def _load_storage_from_bytes(data: bytes) -> Any:
    """Storages are pickled as a nested ``torch.save`` blob; read it without executing anything."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _reconstruct(meta: dict) -> PickledNetwork:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("a persistent object without class metadata")
    return PickledNetwork(meta)


_ALLOWED: dict[tuple[str, str], Any] = {
    PERSISTENT_RECONSTRUCT: _reconstruct,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("numpy", "dtype"): NumpyDType,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): NumpyArray,
    ("numpy._core.multiarray", "_reconstruct"): NumpyArray,
    ("numpy.core.numeric", "_frombuffer"): _numpy_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numpy_frombuffer,
}
_TENSORFLOW = {"dnnlib.tflib.network", "dnnlib.tflib"}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module in _TENSORFLOW:
            raise CheckpointError(self.path, "this is a TensorFlow StyleGAN pickle; convert it to a PyTorch "
                                             "pickle with NVIDIA's legacy.py first")
        raise CheckpointError(self.path, f"refused to load: it references {module}.{name}, which is not "
                                         "part of a StyleGAN network pickle (the file may be hostile)")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError(self.path, "refused to load: unexpected persistent reference in the pickle")


def read_pickle(path: Path) -> dict:
    """The top-level dict of an NVIDIA network pickle, with networks as ``PickledNetwork`` records."""
    try:
        with open(path, "rb") as f:
            data = _RestrictedUnpickler(f, path).load()
    except CheckpointError:
        raise
    except _Refused as e:
        raise CheckpointError(path, f"refused to load: it holds {e}, which a StyleGAN network pickle never "
                                    "contains (the file may be hostile)") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, RuntimeError, IndexError,
            KeyError, AttributeError) as e:
        raise CheckpointError(path, f"not a readable network pickle (truncated or corrupt?): {e}") from e
    if not isinstance(data, dict) or not any(isinstance(v, PickledNetwork) for v in data.values()):
        raise CheckpointError(path, "no StyleGAN networks found in the pickle (expected keys G, D, G_ema)")
    return data


def network(data: dict, key: str, path: Path) -> PickledNetwork:
    """The network stored under ``key`` (``G_ema``, ``G`` or ``D``), with a clear error when absent."""
    net = data.get(key)
    if not isinstance(net, PickledNetwork):
        present = sorted(k for k, v in data.items() if isinstance(v, PickledNetwork))
        raise CheckpointError(path, f"no network '{key}' in the pickle; it holds {present}")
    return net


_G_TOP = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs"}
_MAPPING = {"num_layers", "embed_features", "layer_features", "activation", "lr_multiplier", "w_avg_beta"}
_SYNTHESIS = {"channel_base", "channel_max", "conv_clamp", "resample_filter", "use_noise", "activation"}
_D_TOP = {"c_dim", "img_resolution", "img_channels", "channel_base", "channel_max", "conv_clamp", "cmap_dim",
          "block_kwargs", "mapping_kwargs", "epilogue_kwargs"}
_D_BLOCK = {"resample_filter"}
_D_EPILOGUE = {"mbstd_group_size", "mbstd_num_channels"}
# Options that only choose precision or memory layout at run time, or freeze layers for training.
_RUNTIME_ONLY = {"num_fp16_res", "fp16_channels_last", "fused_modconv_default", "freeze_layers"}


def _pick(kwargs: dict, supported: set[str], where: str, path: Path, fixed: dict | None = None) -> dict:
    """Keep supported options, drop run-time-only ones, refuse anything that would change the network."""
    out = {}
    for key, value in kwargs.items():
        if fixed and key in fixed:
            if value != fixed[key]:
                raise CheckpointError(path, f"unsupported architecture: {where} {key}={value!r} "
                                            f"(only {fixed[key]!r} is implemented)")
        elif key in supported:
            out[key] = list(value) if isinstance(value, tuple) else value
        elif key not in _RUNTIME_ONLY:
            raise CheckpointError(path, f"unsupported architecture: unknown {where} option {key!r}={value!r}")
    return out


def generator_kwargs(net: PickledNetwork, path: Path) -> dict:
    """Constructor arguments of the project's ``Generator`` for a pickled StyleGAN2 generator."""
    synthesis = net.children.get("synthesis")
    if net.class_name != "Generator" or not isinstance(synthesis, PickledNetwork):
        raise CheckpointError(path, f"unsupported architecture: expected a StyleGAN2 Generator, got {net.class_name}")
    if "b4" not in synthesis.children:
        raise CheckpointError(path, "unsupported architecture: the synthesis network has no 'b4' block; this looks "
                                    "like StyleGAN3 (alias-free) synthesis, which this project does not implement")
    top = dict(net.init_kwargs)
    # stylegan3's StyleGAN2 generator takes its synthesis options as top-level keyword arguments.
    flat = {k: top.pop(k) for k in list(top) if k not in _G_TOP}
    synthesis_kwargs = {**flat, **dict(top.get("synthesis_kwargs") or {})}
    fixed = {"architecture": "skip"}
    return dict(
        z_dim=top["z_dim"], c_dim=top.get("c_dim", 0), w_dim=top["w_dim"],
        img_resolution=top["img_resolution"], img_channels=top.get("img_channels", 3),
        mapping_kwargs=_pick(dict(top.get("mapping_kwargs") or {}), _MAPPING, "mapping", path),
        synthesis_kwargs=_pick(synthesis_kwargs, _SYNTHESIS, "synthesis", path, fixed),
    )


def discriminator_kwargs(net: PickledNetwork, path: Path) -> dict:
    """Constructor arguments of the project's ``Discriminator`` for a pickled StyleGAN2 discriminator."""
    if net.class_name != "Discriminator":
        raise CheckpointError(path, f"unsupported architecture: expected a Discriminator, got {net.class_name}")
    kwargs = _pick(dict(net.init_kwargs), _D_TOP, "discriminator", path, {"architecture": "resnet"})
    kwargs["block_kwargs"] = _pick(dict(kwargs.get("block_kwargs") or {}), _D_BLOCK, "block", path,
                                   {"activation": "lrelu", "architecture": "resnet"})
    kwargs["mapping_kwargs"] = _pick(dict(kwargs.get("mapping_kwargs") or {}), _MAPPING, "mapping", path)
    kwargs["epilogue_kwargs"] = _pick(dict(kwargs.get("epilogue_kwargs") or {}), _D_EPILOGUE, "epilogue", path,
                                      {"activation": "lrelu", "architecture": "resnet"})
    return kwargs
