"""Rewrite any loadable StyleGAN2 checkpoint in the project's format or rosinality's (``embed convert``).

The discriminator is converted too when the source holds one. Nothing stored in the source is
executed; the output is written atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from embedding.checkpoints import CheckpointError, load_discriminator, load_generator, native, rosinality
from embedding.files import atomic_write
from embedding.generators import Discriminator, Generator
from embedding.generators.stylegan2 import channels_at

log = logging.getLogger("embedding")


def _source_discriminator(source: str) -> Discriminator | None:
    """The source's discriminator, or None when it holds none."""
    try:
        return load_discriminator(source)
    except CheckpointError as e:
        log.info("no discriminator converted: %s", e.reason)
        return None


def _check_rosinality(g: Generator, d: Discriminator | None, dest: Path) -> None:
    """Refuse what rosinality's state dicts cannot express; warn about what its model.py cannot build."""
    kw, mapping = g.init_kwargs, g.init_kwargs["mapping_kwargs"]
    if kw["c_dim"] or kw["z_dim"] != kw["w_dim"] or kw["img_channels"] != 3:
        raise CheckpointError(dest, "rosinality's generator is unconditional RGB with z_dim == w_dim; "
                                    f"this one has c_dim={kw['c_dim']}, z_dim={kw['z_dim']}, w_dim={kw['w_dim']}, "
                                    f"img_channels={kw['img_channels']}")
    if mapping.get("lr_multiplier", 0.01) != 0.01:
        log.warning("%s: the mapping's lr_multiplier is %s; build rosinality's Generator with lr_mlp=%s",
                    dest, mapping["lr_multiplier"], mapping["lr_multiplier"])
    synthesis = kw["synthesis_kwargs"]
    channels = {r: channels_at(r, synthesis.get("channel_base", 32768), synthesis.get("channel_max", 512))
                for r in g.synthesis.block_resolutions}
    if not rosinality.builds_in_rosinality(channels):
        log.warning("%s: channels %s differ from rosinality's model.py table; this project loads the file, "
                    "rosinality's code needs its channel table changed", dest, channels)
    if synthesis.get("conv_clamp") is not None:
        log.warning("%s: rosinality's model has no activation clamp (conv_clamp=%s is dropped)", dest,
                    synthesis["conv_clamp"])
    if d is not None and d.init_kwargs.get("epilogue_kwargs", {}).get("mbstd_group_size", 4) != 4:
        log.warning("%s: rosinality's discriminator uses minibatch-stddev groups of 4", dest)


def to_rosinality(g: Generator, d: Discriminator | None, dest: Path, dtype: torch.dtype | None) -> Path:
    """Write ``{g_ema, latent_avg[, d]}`` as rosinality's ``convert_weight.py`` does."""
    _check_rosinality(g, d, dest)

    def cast(state: dict) -> dict:
        return {k: (v.to(dtype) if dtype is not None else v).detach().cpu().contiguous() for k, v in state.items()}

    data = {"g_ema": cast(rosinality.from_generator_state(g.state_dict(), g.mapping.num_layers,
                                                          g.synthesis.block_resolutions)),
            "latent_avg": g.w_avg.detach().clone().cpu()}
    if d is not None:
        data["d"] = cast(rosinality.from_discriminator_state(d.state_dict(), d.img_resolution, d.block_resolutions))
    atomic_write(dest, lambda f: torch.save(data, f))
    return dest


def convert(source: str, dest: str | Path, to: str = "project", network: str = "G_ema",
            dtype: torch.dtype | None = None) -> list[Path]:
    """Convert ``source`` to ``dest`` in format ``to`` (``project`` or ``rosinality``); the files written."""
    dest = Path(dest)
    g = load_generator(source, network=network)
    d = _source_discriminator(source)
    if to == "rosinality":
        return [to_rosinality(g, d, dest, dtype)]
    if to != "project":
        raise ValueError(f"unknown format {to!r}: use 'project' or 'rosinality'")
    meta = {"converted_from": str(source), "network": network}
    written = [native.save(g, "generator", dest, dtype, meta)]
    if d is not None:
        d_dest = dest.with_name(f"{dest.stem}_discriminator{dest.suffix}")
        written.append(native.save(d, "discriminator", d_dest, dtype, meta))
    return written
