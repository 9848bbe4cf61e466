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

from embedding.checkpoints.errors import CheckpointError, weights_only_error


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



_CHANNEL_TABLE = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def builds_in_rosinality(channels: dict[int, int]) -> bool:
    """Whether rosinality's ``model.py`` (channels 512 up to 32², then ``k * channel_multiplier``) builds these."""
    return any(all(c == (_CHANNEL_TABLE[r] if r <= 32 else _CHANNEL_TABLE[r] * m) for r, c in channels.items())
               for m in (1, 2, 4))


def _blur(up: bool) -> torch.Tensor:
    """rosinality's FIR buffer for [1, 3, 3, 1]: normalised, times 4 where it upsamples by 2."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = k[None, :] * k[:, None]
    return k / k.sum() * (4 if up else 1)


def from_generator_state(state: dict, num_layers: int, block_resolutions: list[int]) -> dict:
    """A rosinality ``Generator`` state dict from the project's (NVIDIA-named) one; inverse of ``generator_state``."""
    out = {f"style.{i + 1}.{p}": state[f"mapping.fc{i}.{p}"] for i in range(num_layers) for p in ("weight", "bias")}
    out["input.input"] = state["synthesis.b4.const"][None]
    out.update(_to_styled_conv(state, "synthesis.b4.conv1", "conv1", up=False))
    out.update(_to_to_rgb(state, "synthesis.b4.torgb", "to_rgb1", up=False))
    noise_layers = ["synthesis.b4.conv1"]
    for j, res in enumerate(block_resolutions[1:]):
        out.update(_to_styled_conv(state, f"synthesis.b{res}.conv0", f"convs.{2 * j}", up=True))
        out.update(_to_styled_conv(state, f"synthesis.b{res}.conv1", f"convs.{2 * j + 1}", up=False))
        out.update(_to_to_rgb(state, f"synthesis.b{res}.torgb", f"to_rgbs.{j}", up=True))
        noise_layers += [f"synthesis.b{res}.conv0", f"synthesis.b{res}.conv1"]
    for i, name in enumerate(noise_layers):
        out[f"noises.noise_{i}"] = state[f"{name}.noise_const"][None, None]
    return out


def _to_styled_conv(state: dict, src: str, dst: str, up: bool) -> dict:
    out = {f"{dst}.conv.weight": state[f"{src}.weight"][None],
           f"{dst}.conv.modulation.weight": state[f"{src}.affine.weight"],
           f"{dst}.conv.modulation.bias": state[f"{src}.affine.bias"],
           f"{dst}.noise.weight": state[f"{src}.noise_strength"].reshape(1),
           f"{dst}.activate.bias": state[f"{src}.bias"]}
    return {**out, f"{dst}.conv.blur.kernel": _blur(up=True)} if up else out


def _to_to_rgb(state: dict, src: str, dst: str, up: bool) -> dict:
    out = {f"{dst}.conv.weight": state[f"{src}.weight"][None],
           f"{dst}.conv.modulation.weight": state[f"{src}.affine.weight"],
           f"{dst}.conv.modulation.bias": state[f"{src}.affine.bias"],
           f"{dst}.bias": state[f"{src}.bias"].reshape(1, -1, 1, 1)}
    return {**out, f"{dst}.upsample.kernel": _blur(up=True)} if up else out


def from_discriminator_state(state: dict, resolution: int, block_resolutions: list[int]) -> dict:
    """A rosinality ``Discriminator`` state dict from the project's one: the inverse of ``discriminator_state``."""
    out = {"convs.0.0.weight": state[f"b{resolution}.fromrgb.weight"],
           "convs.0.1.bias": state[f"b{resolution}.fromrgb.bias"]}
    for i, res in enumerate(block_resolutions, start=1):
        out.update({f"convs.{i}.conv1.0.weight": state[f"b{res}.conv0.weight"],
                    f"convs.{i}.conv1.1.bias": state[f"b{res}.conv0.bias"],
                    f"convs.{i}.conv2.0.kernel": _blur(up=False),
                    f"convs.{i}.conv2.1.weight": state[f"b{res}.conv1.weight"],
                    f"convs.{i}.conv2.2.bias": state[f"b{res}.conv1.bias"],
                    f"convs.{i}.skip.0.kernel": _blur(up=False),
                    f"convs.{i}.skip.1.weight": state[f"b{res}.skip.weight"]})
    out.update({"final_conv.0.weight": state["b4.conv.weight"], "final_conv.1.bias": state["b4.conv.bias"],
                "final_linear.0.weight": state["b4.fc.weight"], "final_linear.0.bias": state["b4.fc.bias"],
                "final_linear.1.weight": state["b4.out.weight"], "final_linear.1.bias": state["b4.out.bias"]})
    return out
