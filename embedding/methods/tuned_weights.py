"""Each image's own copy of the generator's synthesis weights, for methods that tune the generator (DGP, PTI).

Every image of a group owns a full copy of the synthesis network's parameters, stacked on a
leading image axis; ``torch.func.vmap`` over ``functional_call`` renders image ``i`` with copy
``i`` only, so fitting several images never mixes their weights (Adam is element-wise, so the
optimiser keeps them apart too). A finished image's copy is kept as its difference from the
pretrained weights (:mod:`embedding.weight_diff`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vmap


class WeightCopies(nn.Module):
    """``count`` stacked copies ``[count, ...]`` of ``synthesis``'s parameters, named as in ``synthesis``."""

    def __init__(self, synthesis: nn.Module, count: int) -> None:
        super().__init__()
        self.names: list[str] = []
        self.copies = nn.ParameterList()
        for name, p in synthesis.named_parameters():
            self.names.append(name)
            self.copies.append(nn.Parameter(p.detach().unsqueeze(0).repeat(count, *[1] * p.ndim).contiguous()))

    def named(self) -> dict[str, torch.Tensor]:
        """The stacked copies by parameter name (what checkpoints hold)."""
        return dict(zip(self.names, self.copies, strict=True))

    def render(self, synthesis: nn.Module, w_plus: torch.Tensor) -> torch.Tensor:
        """Render ``w_plus[i]`` with copy ``i`` for every ``i`` (the generator's fixed noise): ``[B, 3, H, W]``."""
        buffers = dict(synthesis.named_buffers())

        def one(params: list[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
            state = {**dict(zip(self.names, params, strict=True)), **buffers}
            return functional_call(synthesis, state, (w[None],), {"noise_mode": "const"})[0]

        return vmap(one)(list(self.copies), w_plus)

    def difference(self, synthesis: nn.Module, i: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Pretrained − copy ``i``, for the tensors that changed only (keyed ``synthesis.<name>``)."""
        base = dict(synthesis.named_parameters())
        out = {}
        for name, stacked in zip(self.names, self.copies, strict=True):
            diff = base[name].detach() - stacked[i].detach()
            if bool(diff.ne(0).any()):
                out[f"synthesis.{name}"] = diff.to(dtype).cpu()
        return out
