"""Read rosinality/stylegan2-pytorch checkpoints (``g_ema``, ``latent_avg``, ``d``) into NVIDIA's layout.

The file is read with ``torch.load(weights_only=True)``; only ``argparse.Namespace`` (the
training arguments some files carry) is admitted beside tensors and containers. Parameter names
are then translated to the project's (which are NVIDIA's); the architectures are the same.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from .errors import CheckpointError, weights_only_error


def read(path: Path) -> dict:
    """The checkpoint dict, read without executing code."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several unrelated types for corrupt or hostile files
        raise weights_only_error(path, e) from e
    if not isinstance(data, dict):
        raise CheckpointError(path, f"expected a dict of state dicts, got {type(data).__name__}")
    return data


def _block_res(index: int) -> int:
    return 8 * 2**index


def generator_state(g: dict, latent_avg: torch.Tensor | None) -> tuple[dict, dict]:
    """Constructor kwargs and NVIDIA-named state dict for a rosinality ``Generator`` state dict."""
    n_mlp = len([k for k in g if re.fullmatch(r"style\.\d+\.weight", k)])
    num_rgbs = len([k for k in g if re.fullmatch(r"to_rgbs\.\d+\.bias", k)])
    resolution = 4 * 2**num_rgbs
    w_dim = g["style.1.weight"].shape[1]
    last_channels = g["to_rgb1.conv.weight"].shape[2] if num_rgbs == 0 else \
        g[f"to_rgbs.{num_rgbs - 1}.conv.weight"].shape[2]
    kwargs = dict(z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=n_mlp),
                  synthesis_kwargs=dict(channel_base=last_channels * resolution,
                                        channel_max=g["input.input"].shape[1]))
    out = {f"mapping.fc{i - 1}.{p}": g[f"style.{i}.{p}"] for i in range(1, n_mlp + 1) for p in ("weight", "bias")}
    out["synthesis.b4.const"] = g["input.input"][0]
    out.update(_styled_conv(g, "conv1", "synthesis.b4.conv1"))
    out.update(_to_rgb(g, "to_rgb1", "synthesis.b4.torgb"))
    for j in range(num_rgbs):
        res = _block_res(j)
        out.update(_styled_conv(g, f"convs.{2 * j}", f"synthesis.b{res}.conv0"))
        out.update(_styled_conv(g, f"convs.{2 * j + 1}", f"synthesis.b{res}.conv1"))
        out.update(_to_rgb(g, f"to_rgbs.{j}", f"synthesis.b{res}.torgb"))
    noise_layers = ["synthesis.b4.conv1"] + [f"synthesis.b{_block_res(j)}.conv{k}"
                                             for j in range(num_rgbs) for k in (0, 1)]
    for i, name in enumerate(noise_layers):
        out[f"{name}.noise_const"] = g[f"noises.noise_{i}"][0, 0]
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.reshape(-1)
    return kwargs, out


def _styled_conv(g: dict, src: str, dst: str) -> dict:
    return {f"{dst}.weight": g[f"{src}.conv.weight"][0],
            f"{dst}.affine.weight": g[f"{src}.conv.modulation.weight"],
            f"{dst}.affine.bias": g[f"{src}.conv.modulation.bias"],
            f"{dst}.noise_strength": g[f"{src}.noise.weight"].reshape([]),
            f"{dst}.bias": g[f"{src}.activate.bias"]}


def _to_rgb(g: dict, src: str, dst: str) -> dict:
    return {f"{dst}.weight": g[f"{src}.conv.weight"][0],
            f"{dst}.affine.weight": g[f"{src}.conv.modulation.weight"],
            f"{dst}.affine.bias": g[f"{src}.conv.modulation.bias"],
            f"{dst}.bias": g[f"{src}.bias"].reshape(-1)}


def discriminator_state(d: dict) -> tuple[dict, dict]:
    """Constructor kwargs and NVIDIA-named state dict for a rosinality ``Discriminator`` state dict."""
    num_blocks = len([k for k in d if re.fullmatch(r"convs\.\d+\.conv1\.0\.weight", k)])
    resolution = 4 * 2**num_blocks
    top_channels = d["convs.0.0.weight"].shape[0]
    kwargs = dict(c_dim=0, img_resolution=resolution, img_channels=d["convs.0.0.weight"].shape[1],
                  channel_base=top_channels * resolution, channel_max=d["final_conv.0.weight"].shape[0])
    out = {f"b{resolution}.fromrgb.weight": d["convs.0.0.weight"], f"b{resolution}.fromrgb.bias": d["convs.0.1.bias"]}
    for i in range(1, num_blocks + 1):
        res = resolution // 2 ** (i - 1)
        out.update({f"b{res}.conv0.weight": d[f"convs.{i}.conv1.0.weight"],
                    f"b{res}.conv0.bias": d[f"convs.{i}.conv1.1.bias"],
                    f"b{res}.conv1.weight": d[f"convs.{i}.conv2.1.weight"],
                    f"b{res}.conv1.bias": d[f"convs.{i}.conv2.2.bias"],
                    f"b{res}.skip.weight": d[f"convs.{i}.skip.1.weight"]})
    out.update({"b4.conv.weight": d["final_conv.0.weight"], "b4.conv.bias": d["final_conv.1.bias"],
                "b4.fc.weight": d["final_linear.0.weight"], "b4.fc.bias": d["final_linear.0.bias"],
                "b4.out.weight": d["final_linear.1.weight"], "b4.out.bias": d["final_linear.1.bias"]})
    return kwargs, out


def is_rosinality_generator(state: dict) -> bool:
    return "input.input" in state and "style.1.weight" in state

