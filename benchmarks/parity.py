"""Compare the project's StyleGAN2 with NVIDIA's implementation, through snapshots NVIDIA's code writes.

For each resolution, NVIDIA's classes build a generator and discriminator with random weights
(every bias, noise strength and running mean non-zero), NVIDIA's pickling writes them as a
training snapshot, and ``load_generator`` / ``load_discriminator`` read that file back. The
table gives max |Δ| between NVIDIA's outputs and ours for the same inputs: mapping with and
without truncation, synthesis with the constant noise and with given per-layer noise, and
discriminator scores; then the forward + backward time of ``synthesis`` with respect to W+.

    python benchmarks/parity.py --official /path/to/stylegan2-ada-pytorch [--protocol 3]

The reference checkout is only imported, never modified or copied.
"""

from __future__ import annotations

import argparse
import io
import pickle
import tempfile
import time
from pathlib import Path

import numpy
import torch
from official_snapshots import build, import_official, reference_outputs, snapshot_data

from embedding.checkpoints import load_discriminator, load_generator


def time_fwd_bwd(synthesis, ws: torch.Tensor, repeats: int, **kwargs) -> float:
    """Median seconds of one render + backward to W+."""
    times = []
    for _ in range(repeats + 1):
        w = ws.clone().requires_grad_(True)
        start = time.perf_counter()
        synthesis(w, **kwargs).square().mean().backward()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[repeats // 2]


@torch.no_grad()
def deltas(ref: dict, g: torch.nn.Module, d: torch.nn.Module) -> dict[str, float]:
    """Max |Δ| of each output of the loaded networks against NVIDIA's reference outputs."""
    noise = [n[None, None] for n in ref["noise"]]
    ours = {
        "mapping": g.mapping(ref["z"]),
        "mapping ψ=0.7": g.mapping(ref["z"], truncation_psi=0.7),
        "synthesis const": g.synthesis(ref["ws"], noise_mode="const"),
        "synthesis noise": g.synthesis(ref["ws"], noise=noise),
        "D": d(ref["d_image"]),
    }
    keys = {"mapping": "ws", "mapping ψ=0.7": "ws_trunc", "synthesis const": "img_const",
            "synthesis noise": "img_noise", "D": "d_score"}
    return {name: (out - ref[keys[name]]).abs().max().item() for name, out in ours.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="path of a stylegan2-ada-pytorch checkout")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--protocol", type=int, default=pickle.DEFAULT_PROTOCOL)
    parser.add_argument("--layout", choices=("train", "legacy"), default="train",
                        help="a training snapshot (fp16 blocks, clamp 256) or a TF-converted file (legacy.py)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    official = import_official(args.official.resolve())
    torch.manual_seed(0)
    legacy = args.layout == "legacy"
    print(f"{args.layout} snapshots written by NVIDIA's code (pickle protocol {args.protocol}, numpy "
          f"{numpy.__version__}); {'no clamp, fp32' if legacy else 'conv_clamp 256, num_fp16_res 4'}; "
          "outputs in float32")
    header = None
    for res in args.resolutions:
        channel_base = 16384 if res >= 256 else 32768
        nets = build(official, resolution=res, channel_base=channel_base, channel_max=512, z_dim=512,
                     mapping_layers=8, num_fp16_res=0 if legacy else 4, conv_clamp=None if legacy else 256, seed=res,
                     layout=args.layout)
        data = snapshot_data(nets)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "network-snapshot.pkl"
            buffer = io.BytesIO()
            pickle.dump(data, buffer, protocol=args.protocol)
            path.write_bytes(buffer.getvalue())
            g, d = load_generator(path), load_discriminator(path)
        ref = reference_outputs(data["G_ema"], data["D"], seed=res, batch=args.batch)
        row = deltas(ref, g, d)
        if header is None:
            header = list(row)
            print(f"{'res':>5} " + " ".join(f"{h:>15}" for h in header))
        print(f"{res:>5} " + " ".join(f"{row[h]:15.2e}" for h in header))
        if not args.no_timing:
            ws = ref["ws"]
            ref_t = dict(noise_mode="const", force_fp32=True)
            fused = time_fwd_bwd(data["G_ema"].synthesis, ws, args.repeats, fused_modconv=True, **ref_t)
            split = time_fwd_bwd(data["G_ema"].synthesis, ws, args.repeats, fused_modconv=False, **ref_t)
            ours = time_fwd_bwd(g.synthesis, ws, args.repeats, noise_mode="const")
            print(f"      fwd+bwd s, batch {args.batch}: NVIDIA grouped-conv {fused:.2f}, NVIDIA split {split:.2f}, "
                  f"ours {ours:.2f} ({min(fused, split) / ours:.2f}x)")


if __name__ == "__main__":
    main()
