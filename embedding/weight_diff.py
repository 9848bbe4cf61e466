"""A tuned generator kept as its difference from the pretrained one: ``generators/<stem>.pt`` of a run folder.

The file holds only the tensors that changed, as pretrained − fine-tuned (keyed ``synthesis.<name>``),
and names the pretrained generator; :meth:`embedding.latents.Latents.generator` applies it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from embedding.generators import Generator

DIFF_KEY = "pretrained_minus_finetuned"


def diff_record(diff: dict[str, torch.Tensor], provenance: dict[str, str]) -> dict:
    """The contents of ``generators/<stem>.pt``: the difference and the pretrained generator's name and hash."""
    return {DIFF_KEY: diff, **provenance}


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
