"""What every generator architecture offers the engine: W+ and noise maps in, an image out, layer taps.

A generator has ``mapping`` (z → W+ ``[B, num_ws, w_dim]``, with the mean latent ``w_avg``) and
``synthesis`` (W+ and one noise map per noisy layer → image in about [-1, 1]). The synthesis
names its noise maps' shapes (``noise_shapes``), their strengths and W+ rows, and the layers
whose activations can be read or replaced (``layer_names``, :meth:`SynthesisBase.taps`).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

Replacement = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


class SynthesisBase(nn.Module, ABC):
    """Noise-map handling and activation taps shared by every synthesis network.

    Subclasses set ``num_ws`` and ``w_dim`` and define the abstract members below.
    """

    num_ws: int
    w_dim: int

    @property
    @abstractmethod
    def noise_shapes(self) -> list[tuple[int, int, int, int]]:
        """Shapes ``[1, 1, H, W]`` of the noise inputs, in layer order."""

    @property
    @abstractmethod
    def noise_rows(self) -> list[int]:
        """The W+ row read by the layer of each noise map (style mixing keeps a map with its row)."""

    @property
    @abstractmethod
    def layer_names(self) -> list[str]:
        """Names of the layers whose activations can be read or replaced, in rendering order."""

    @abstractmethod
    def const_noise(self) -> list[torch.Tensor]:
        """The checkpoint's fixed unit-variance noise maps (``noise_mode='const'``), each ``[1, 1, H, W]``."""

    @abstractmethod
    def noise_strengths(self) -> torch.Tensor:
        """How strongly each layer adds its unit-variance noise map (``|strength|``, one per map)."""

    @abstractmethod
    def style_weights(self) -> list[torch.Tensor]:
        """The style (affine) weights ``[channels, w_dim]`` that SeFa factorizes, one per W+ row from row 0."""

    def random_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """Fresh standard-normal noise maps, each ``[batch, 1, H, W]``."""
        device = next(self.parameters()).device
        return [torch.randn((batch, *shape[1:]), generator=generator, device=device) for shape in self.noise_shapes]

    def check_ws(self, ws: torch.Tensor) -> None:
        """Refuse W+ codes of the wrong shape, naming the expected one."""
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [B, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")

    def resolve_noise(self, batch: int, noise: Sequence[torch.Tensor] | None, mode: str) -> list:
        """The maps to render with: ``noise`` (checked) if given, else the ones ``mode`` names (None: no noise)."""
        shapes = self.noise_shapes
        if noise is not None:
            if len(noise) != len(shapes):
                raise ValueError(f"expected {len(shapes)} noise maps, got {len(noise)}")
            for i, (n, shape) in enumerate(zip(noise, shapes, strict=True)):
                if n.ndim != 4 or n.shape[1:] != shape[1:] or n.shape[0] not in (1, batch):
                    raise ValueError(f"noise map {i} must be [1 or {batch}, 1, {shape[2]}, {shape[3]}], "
                                     f"got {list(n.shape)}")
            return list(noise)
        if mode == "const":
            return self.const_noise()
        if mode == "random":
            return self.random_noise(batch)
        if mode == "none":
            return [None] * len(shapes)
        raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {mode!r}")

    @contextlib.contextmanager
    def taps(
        self, read: Sequence[str] = (), replace: dict[str, Replacement] | None = None
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Read and/or replace layer activations during the renders inside the ``with`` block.

        ``read`` names layers (see ``layer_names``) whose outputs are stored in the yielded dict;
        ``replace`` maps a layer name to a tensor (used instead of the layer's output) or to a
        function of the output (e.g. ``lambda a: m * a + (1 - m) * b``).
        """
        replace = replace or {}
        unknown = sorted((set(read) | set(replace)) - set(self.layer_names))
        if unknown:
            raise KeyError(f"unknown layer(s) {unknown}; layers are {self.layer_names}")
        store: dict[str, torch.Tensor] = {}
        handles = [self.get_submodule(name).register_forward_hook(self._tap_hook(name, name in read, replace.get(name),
                                                                                 store))
                   for name in dict.fromkeys([*read, *replace])]
        try:
            yield store
        finally:
            for h in handles:
                h.remove()

    @staticmethod
    def _tap_hook(name: str, keep: bool, replacement: Replacement | None, store: dict):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if replacement is not None:
                new = replacement(output) if callable(replacement) else replacement
                output = new.to(dtype=output.dtype).expand_as(output)
            if keep:
                store[name] = output
            return output
        return hook


class GeneratorBase(nn.Module):
    """``mapping`` (z, c → W+) and ``synthesis`` (W+, noise → image); subclasses build both."""

    mapping: nn.Module
    synthesis: SynthesisBase
    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    img_channels: int
    code_radius: float | None = None
    """How far from the mean code (W distance) renders stay images; None where the network bounds its
    activations itself (StyleGAN2's demodulation). Regularisers that sample codes far out respect it."""

    @property
    def resolution(self) -> int:
        return self.img_resolution

    @property
    def w_avg(self) -> torch.Tensor:
        """The mean latent (the usual starting point of an embedding)."""
        return self.mapping.w_avg

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
    ) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)
