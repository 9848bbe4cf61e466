"""Compare the project's StyleGAN2 with NVIDIA's reference implementation, run side by side.

Builds both networks with the same random weights (every parameter and noise strength
randomised, so no term is trivially zero), renders the same W+ codes with the checkpoint's
constant noise, and prints max |Δ| of images and discriminator outputs, then the forward +
backward time of ``synthesis`` with respect to W+.

    python benchmarks/parity.py --official /path/to/stylegan2-ada-pytorch

The reference checkout is only imported, never modified or copied.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from embedding.generators import Discriminator, Generator


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Give every parameter random values (biases and noise strengths start at zero otherwise)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.ndim <= 1 else 1.0))


def build_pair(official, resolution: int, channel_base: int, conv_clamp: float | None):
    """The reference generator and discriminator, and ours with identical weights."""
    g_kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                    mapping_kwargs=dict(num_layers=8),
                    synthesis_kwargs=dict(channel_base=channel_base, channel_max=512, conv_clamp=conv_clamp))
    ref_g = official.Generator(**g_kwargs).eval()
    randomise(ref_g, 0)
    ours_g = Generator(**g_kwargs).eval()
    ours_g.load_state_dict(_without_filters(ref_g.state_dict()))
    d_kwargs = dict(c_dim=0, img_resolution=resolution, img_channels=3, channel_base=channel_base,
                    channel_max=512, conv_clamp=conv_clamp)
    ref_d = official.Discriminator(**d_kwargs).eval()
    randomise(ref_d, 1)
    ours_d = Discriminator(**d_kwargs).eval()
    ours_d.load_state_dict(_without_filters(ref_d.state_dict()))
    return ref_g, ours_g, ref_d, ours_d


def _without_filters(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.endswith("resample_filter")}


def time_fwd_bwd(synthesis, ws: torch.Tensor, repeats: int, **kwargs) -> float:
    """Median seconds of one render + backward to W+."""
    times = []
    for _ in range(repeats + 1):
        w = ws.clone().requires_grad_(True)
        start = time.perf_counter()
        synthesis(w, **kwargs).square().mean().backward()
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[repeats // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, help="path of a stylegan2-ada-pytorch checkout")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, args.official)
    from training import networks as official  # noqa: PLC0415 (the reference is only importable at run time)

    torch.manual_seed(0)
    print("ref fused = NVIDIA's grouped-convolution path (its default in eval mode); ref split = its")
    print("activation-scaling path (its default in training mode); times are forward + backward to W+.")
    print(f"{'res':>5} {'clamp':>6} {'max|Δ| image':>13} {'max|Δ| D':>10} "
          f"{'ref fused s':>11} {'ref split s':>11} {'ours s':>7} {'speed-up':>8}")
    for res in args.resolutions:
        channel_base = 16384 if res >= 256 else 32768
        for clamp in (None, 256.0):
            ref_g, ours_g, ref_d, ours_d = build_pair(official, res, channel_base, clamp)
            ws = torch.randn(args.batch, ours_g.num_ws, 512) * 0.7 + ours_g.w_avg
            with torch.no_grad():
                ref_img = ref_g.synthesis(ws, noise_mode="const", force_fp32=True)
                ours_img = ours_g.synthesis(ws, noise_mode="const")
                d_delta = (ref_d(ref_img, None) - ours_d(ref_img)).abs().max().item()
            delta = (ref_img - ours_img).abs().max().item()
            timing = ""
            if clamp is None:
                ref = dict(noise_mode="const", force_fp32=True)
                fused_t = time_fwd_bwd(ref_g.synthesis, ws, args.repeats, fused_modconv=True, **ref)
                split_t = time_fwd_bwd(ref_g.synthesis, ws, args.repeats, fused_modconv=False, **ref)
                ours_t = time_fwd_bwd(ours_g.synthesis, ws, args.repeats, noise_mode="const")
                timing = f"{fused_t:11.2f} {split_t:11.2f} {ours_t:7.2f} {min(fused_t, split_t) / ours_t:7.2f}x"
            print(f"{res:>5} {str(clamp):>6} {delta:13.2e} {d_delta:10.2e} {timing}")


if __name__ == "__main__":
    main()
