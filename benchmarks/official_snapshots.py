"""Write network snapshots and reference outputs with NVIDIA's own code, for parity tests and fixtures.

Given a checkout of NVlabs/stylegan2-ada-pytorch (or NVlabs/stylegan3, whose StyleGAN2 networks
live in ``training/networks_stylegan2.py``), this builds a generator, its EMA copy, a
discriminator and an augmentation pipeline with NVIDIA's classes, gives every parameter and
buffer random non-zero values, and pickles them exactly as NVIDIA's training loop writes a
snapshot (``{G, D, G_ema, augment_pipe, training_set_kwargs}``, the networks deep-copied to CPU in
eval mode). It then records NVIDIA's outputs for fixed inputs: mapping with and without
truncation, synthesis with the constant noise and with given per-layer noise, the whole
generator, and discriminator scores.

    python benchmarks/official_snapshots.py --official /path/to/stylegan2-ada-pytorch \\
        --out tests/fixtures/nvidia --name ada_np2 --resolution 32 --protocol 4

``--strip-sources`` replaces the Python source that NVIDIA stores in every network (``module_src``)
by a short stub that raises when executed, leaving every other byte of the pickle as written, so
the file can be committed without NVIDIA's code. The reference checkout is only imported.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import io
import pickle
import pickletools
import sys
import types
from pathlib import Path

import numpy as np
import torch

SOURCE_STUB = "raise RuntimeError('this network source was removed; the file must be read without executing it')\n"
_STRING_OPS = {"SHORT_BINUNICODE": 1, "BINUNICODE": 4, "BINUNICODE8": 8}  # opcode -> bytes of its length


def import_official(checkout: Path) -> types.SimpleNamespace:
    """NVIDIA's network and augmentation modules from ``checkout`` (stylegan2-ada-pytorch or stylegan3)."""
    sys.path.insert(0, str(checkout))
    import importlib  # noqa: PLC0415

    name = "training.networks_stylegan2" if (checkout / "training" / "networks_stylegan2.py").is_file() \
        else "training.networks"
    return types.SimpleNamespace(networks=importlib.import_module(name), dnnlib=importlib.import_module("dnnlib"),
                                 augment=importlib.import_module("training.augment"),
                                 stylegan3=name.endswith("stylegan2"))


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Random values for every parameter and float buffer, so no bias, noise strength or mean is zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if t.is_floating_point() and not name.endswith("resample_filter"):
                t.copy_(torch.randn(t.shape, generator=gen) * (0.5 if t.ndim <= 1 else 1.0))


def build(official: types.SimpleNamespace, resolution: int, channel_base: int, channel_max: int,
          z_dim: int, mapping_layers: int, num_fp16_res: int, conv_clamp: float | None, seed: int,
          layout: str = "train") -> dict:
    """NVIDIA's G, G_ema, D (and augment pipe) for one configuration, with random weights.

    The constructor arguments are nested ``dnnlib.EasyDict``s laid out as NVIDIA's code passes
    them, since the pickle stores them as they were passed: ``train.py``'s for ``layout="train"``;
    ``legacy.py``'s, which wrote the released TensorFlow-converted files (config-f), for
    ``layout="legacy"``.
    """
    EasyDict = official.dnnlib.EasyDict
    common = dict(c_dim=0, img_resolution=resolution, img_channels=3)
    synthesis = dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=num_fp16_res,
                     conv_clamp=conv_clamp)
    if layout == "legacy":
        lrelu = dict(activation="lrelu")
        g_kwargs = EasyDict(z_dim=z_dim, w_dim=z_dim, mapping_kwargs=EasyDict(
            num_layers=mapping_layers, embed_features=None, layer_features=None, lr_multiplier=0.01,
            w_avg_beta=0.995, **lrelu), synthesis_kwargs=EasyDict(
            **synthesis, architecture="skip", resample_filter=[1, 3, 3, 1], use_noise=True, **lrelu))
        d_kwargs = EasyDict(**synthesis, architecture="resnet", cmap_dim=None,
                            block_kwargs=EasyDict(resample_filter=[1, 3, 3, 1], freeze_layers=0, **lrelu),
                            mapping_kwargs=EasyDict(num_layers=0, embed_features=None, layer_features=None,
                                                    lr_multiplier=0.1, **lrelu),
                            epilogue_kwargs=EasyDict(mbstd_group_size=None, mbstd_num_channels=1, **lrelu))
    else:
        g_kwargs = EasyDict(z_dim=z_dim, w_dim=z_dim, mapping_kwargs=EasyDict(num_layers=mapping_layers))
        d_kwargs = EasyDict(**synthesis, block_kwargs=EasyDict(), mapping_kwargs=EasyDict(),
                            epilogue_kwargs=EasyDict(mbstd_group_size=2))
        if official.stylegan3:  # stylegan3's StyleGAN2 generator takes synthesis options at the top level
            g_kwargs.update(synthesis, fused_modconv_default="inference_only")
            d_kwargs.block_kwargs.freeze_layers = 0
        else:
            g_kwargs.synthesis_kwargs = EasyDict(synthesis)
    G = official.networks.Generator(**g_kwargs, **common)
    randomise(G, seed)
    G_ema = copy.deepcopy(G)
    randomise(G_ema, seed + 1)
    D = official.networks.Discriminator(**d_kwargs, **common)
    randomise(D, seed + 2)
    if layout == "legacy":
        return dict(G=G, D=D, G_ema=G_ema, training_set_kwargs=None, augment_pipe=None)
    augment_pipe = official.augment.AugmentPipe(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                                                brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
    augment_pipe.p.copy_(torch.as_tensor(0.25))
    training_set_kwargs = dict(class_name="training.dataset.ImageFolderDataset", path="faces.zip", use_labels=False,
                               max_size=70000, xflip=True, resolution=256, random_seed=0)
    return dict(G=G, D=D, G_ema=G_ema, augment_pipe=augment_pipe, training_set_kwargs=training_set_kwargs)


def snapshot_data(nets: dict) -> dict:
    """The dict NVIDIA pickles: networks copied to CPU in eval mode, everything else as it is."""
    return {name: copy.deepcopy(value).eval().requires_grad_(False).cpu() if isinstance(value, torch.nn.Module)
            else value for name, value in nets.items()}


def module_sources(official: types.SimpleNamespace) -> set[str]:
    """The text of each module whose source NVIDIA stores in the pickle (its network and augment modules)."""
    return {inspect.getsource(module) for module in (official.networks, official.augment)}


def strip_sources(blob: bytes, sources: set[str]) -> bytes:
    """``blob`` with every stored module source (a string equal to one of ``sources``) replaced by ``SOURCE_STUB``.

    Pickle strings are length-prefixed and memo entries are numbered, not addressed, so replacing
    one string opcode leaves the stream valid once the length of the frame holding it (protocol 4+)
    is corrected.
    """
    stub = SOURCE_STUB.encode("utf-8")
    stub_op = b"\x8c" + bytes([len(stub)]) + stub
    frames, edits = [], []
    for opcode, value, pos in pickletools.genops(blob):
        if opcode.name == "FRAME":
            frames.append((pos, value))
        elif opcode.name in _STRING_OPS and value in sources:
            end = pos + 1 + _STRING_OPS[opcode.name] + len(value.encode("utf-8"))
            edits.append((pos, end, stub_op))
    if not edits:
        raise ValueError("no module source found in the pickle")
    for pos, length in frames:
        body = (pos + 9, pos + 9 + length)
        delta = sum(len(new) - (end - start) for start, end, new in edits if body[0] <= start < body[1])
        if delta:
            edits.append((pos, pos + 9, b"\x95" + (length + delta).to_bytes(8, "little")))
    out, last = io.BytesIO(), 0
    for start, end, new in sorted(edits):
        out.write(blob[last:start])
        out.write(new)
        last = end
    out.write(blob[last:])
    return out.getvalue()


@torch.no_grad()
def reference_outputs(G: torch.nn.Module, D: torch.nn.Module, seed: int, batch: int = 2) -> dict:
    """Inputs and NVIDIA's outputs for them (every network run in float32)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, G.z_dim, generator=gen)
    layers = [(f"b{res}", name) for res in G.synthesis.block_resolutions
              for name in (["conv1"] if res == 4 else ["conv0", "conv1"])]
    noise = [torch.randn(getattr(getattr(G.synthesis, b), c).noise_const.shape, generator=gen) for b, c in layers]
    ws = G.mapping(z, None)
    ws_trunc = G.mapping(z, None, truncation_psi=0.7)
    ws_cutoff = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    img_const = G.synthesis(ws, noise_mode="const", force_fp32=True)
    img_none = G.synthesis(ws, noise_mode="none", force_fp32=True)
    saved = [getattr(getattr(G.synthesis, b), c).noise_const.clone() for b, c in layers]
    for (b, c), n in zip(layers, noise, strict=True):
        getattr(getattr(G.synthesis, b), c).noise_const.copy_(n)
    img_noise = G.synthesis(ws, noise_mode="const", force_fp32=True)
    for (b, c), n in zip(layers, saved, strict=True):
        getattr(getattr(G.synthesis, b), c).noise_const.copy_(n)
    img_full = G(z, None, truncation_psi=0.7, noise_mode="const", force_fp32=True)
    d_real = torch.rand(batch, 3, G.img_resolution, G.img_resolution, generator=gen) * 2 - 1
    return dict(z=z, noise=noise, noise_layers=[f"{b}.{c}" for b, c in layers], ws=ws, ws_trunc=ws_trunc,
                ws_cutoff=ws_cutoff, img_const=img_const, img_none=img_none, img_noise=img_noise, img_full=img_full,
                d_image=d_real, d_score=D(d_real, None, force_fp32=True),
                d_score_fake=D(img_const, None, force_fp32=True))


def write(official: types.SimpleNamespace, out: Path, name: str, protocol: int, strip: bool, **config) -> Path:
    """Pickle a snapshot as NVIDIA does and save the reference outputs beside it; the pickle's path."""
    nets = build(official, **config)
    data = snapshot_data(nets)
    buffer = io.BytesIO()
    pickle.dump(data, buffer, protocol=protocol)
    blob = strip_sources(buffer.getvalue(), module_sources(official)) if strip else buffer.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    pkl = out / f"{name}.pkl"
    pkl.write_bytes(blob)
    ref = reference_outputs(data["G_ema"], data["D"], seed=config["seed"] + 10)


    ref["written_with"] = dict(numpy=np.__version__, torch=str(torch.__version__), protocol=protocol,
                               python=sys.version.split()[0], stylegan3_repo=official.stylegan3)
    torch.save(ref, out / f"{name}.outputs.pt")
    return pkl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="stylegan2-ada-pytorch or stylegan3 checkout")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--name", required=True, help="file stem of the snapshot and its outputs")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channel-base", type=int, default=512)
    parser.add_argument("--channel-max", type=int, default=16)
    parser.add_argument("--z-dim", type=int, default=32)
    parser.add_argument("--mapping-layers", type=int, default=2)
    parser.add_argument("--num-fp16-res", type=int, default=2)
    parser.add_argument("--conv-clamp", type=float, default=256, help="0 for none")
    parser.add_argument("--protocol", type=int, default=pickle.DEFAULT_PROTOCOL)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=("train", "legacy"), default="train",
                        help="constructor arguments as train.py passes them, or as legacy.py's TF conversion does")
    parser.add_argument("--strip-sources", action="store_true", help="replace NVIDIA's stored source by a stub")
    args = parser.parse_args()
    official = import_official(args.official.resolve())
    pkl = write(official, args.out, args.name, args.protocol, args.strip_sources, resolution=args.resolution,
                channel_base=args.channel_base, channel_max=args.channel_max, z_dim=args.z_dim,
                mapping_layers=args.mapping_layers, num_fp16_res=args.num_fp16_res, conv_clamp=args.conv_clamp or None,
                seed=args.seed, layout=args.layout)
    print(f"wrote {pkl} ({pkl.stat().st_size / 1024:.0f} KiB) and {pkl.with_suffix('.outputs.pt').name}")


if __name__ == "__main__":
    main()
