"""Per-image generator weights: stacked copies rendered with ``vmap``, and the weight-difference files.

Every image of a group owns a full copy of the synthesis network's parameters, stacked on a
leading image axis; ``torch.func.vmap`` over ``functional_call`` renders image ``i`` with copy
``i`` only, so fitting several images never mixes their weights (Adam is element-wise, so the
optimiser keeps them apart too). A finished image's generator is written as
``generators/<stem>.pt``: only the tensors that changed, as pretrained − fine-tuned.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, vmap

from embedding.generators import Generator

DIFF_KEY = "pretrained_minus_finetuned"


def stacked_parameters(synthesis: nn.Module, count: int) -> tuple[list[str], nn.ParameterList]:
    """Names and ``count`` stacked copies ``[count, ...]`` of ``synthesis``'s parameters."""
    names, copies = [], nn.ParameterList()
    for name, p in synthesis.named_parameters():
        names.append(name)
        copies.append(nn.Parameter(p.detach().unsqueeze(0).repeat(count, *[1] * p.ndim).contiguous()))
    return names, copies


def render_stacked(synthesis: nn.Module, names: list[str], weights: list[torch.Tensor],
                   w_plus: torch.Tensor) -> torch.Tensor:
    """Render ``w_plus[i]`` with weight copy ``i`` for every ``i`` (const noise): ``[B, 3, H, W]``."""
    buffers = dict(synthesis.named_buffers())

    def one(params: list[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        state = {**dict(zip(names, params, strict=True)), **buffers}
        return functional_call(synthesis, state, (w[None],), {"noise_mode": "const"})[0]

    return vmap(one)(list(weights), w_plus)


def weight_diff(synthesis: nn.Module, names: list[str], weights: list[torch.Tensor], i: int,
                dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Pretrained − fine-tuned for copy ``i``, for the tensors that changed only (keyed ``synthesis.<name>``)."""
    base = dict(synthesis.named_parameters())
    out = {}
    for name, stacked in zip(names, weights, strict=True):
        diff = base[name].detach() - stacked[i].detach()
        if bool(diff.ne(0).any()):
            out[f"synthesis.{name}"] = diff.to(dtype).cpu()
    return out


def diff_record(synthesis: nn.Module, names: list[str], weights: list[torch.Tensor], i: int, dtype: torch.dtype,
                source: str, source_sha256: str) -> dict:
    """The contents of ``generators/<stem>.pt`` for copy ``i``: its difference and the pretrained generator's name."""
    return {DIFF_KEY: weight_diff(synthesis, names, weights, i, dtype), "generator": source,
            "generator_sha256": source_sha256}


def read_diff(path: Path) -> dict[str, torch.Tensor]:
    """The pretrained − fine-tuned tensors stored in a ``generators/<stem>.pt`` file."""
    try:
        diff = torch.load(path, map_location="cpu", weights_only=True)[DIFF_KEY]
    except FileNotFoundError:
        raise FileNotFoundError(f"weight difference not found: {path}") from None
    except Exception as e:  # torch raises many types for corrupt files
        raise ValueError(f"{path}: unreadable weight difference: {e}") from e
    return diff


@torch.no_grad()
def apply_diff(generator: Generator, diff: dict[str, torch.Tensor]) -> Generator:
    """Turn the pretrained ``generator`` into the fine-tuned one in place: θ = θ_pretrained − diff."""
    params = dict(generator.named_parameters())
    for name, d in diff.items():
        if name not in params or params[name].shape != d.shape:
            raise ValueError(f"weight difference for {name} {list(d.shape)} does not fit this generator")
        params[name].sub_(d.to(params[name]))
    return generator


def apply_diff_file(generator: Generator, path: Path) -> Generator:
    """Apply the weight difference stored in ``path`` to ``generator`` in place (errors name the file)."""
    diff = read_diff(path)
    try:
        return apply_diff(generator, diff)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
