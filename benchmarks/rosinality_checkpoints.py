"""Write rosinality/stylegan2-pytorch checkpoints and reference outputs with that project's own ``model.py``.

Given a checkout of rosinality/stylegan2-pytorch, this builds its ``Generator`` and
``Discriminator`` on CPU, gives every parameter random non-zero values, and saves the two kinds of
file that project writes: a training checkpoint (``train.py``: ``g``, ``d``, ``g_ema``, both
optimisers, ``args``, ``ada_aug_p``) and a converted one (``convert_weight.py``: ``g_ema``,
``latent_avg``, ``d``). Beside each it stores the reference outputs for fixed inputs: mapping
with and without truncation, synthesis with the stored noise, with given noise and with style
mixing, and discriminator scores.

    python benchmarks/rosinality_checkpoints.py --official /path/to/stylegan2-pytorch --out tests/fixtures/rosinality

Two things are changed at run time, in memory only: ``torch.utils.cpp_extension.load`` is replaced
so that ``op/`` imports without compiling its CUDA kernels (on CPU, ``op`` then runs its own
plain-PyTorch paths), and the channel table in ``model.py`` is scaled down (``--width``) so the
files stay small; everything else runs as written.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from pathlib import Path

import torch
import torch.utils.cpp_extension


def import_model(checkout: Path, width: int) -> types.ModuleType:
    """rosinality's ``model.py`` with its channel table scaled to ``width`` at 4² to 32²."""
    torch.utils.cpp_extension.load = lambda *args, **kwargs: types.SimpleNamespace()
    sys.path.insert(0, str(checkout))
    source = (checkout / "model.py").read_text()
    scale = width / 512
    source = re.sub(r"(\d+): (\d+)( \* channel_multiplier)?,",
                    lambda m: f"{m.group(1)}: {max(1, int(int(m.group(2)) * scale))}{m.group(3) or ''},", source)
    module = types.ModuleType("rosinality_model")
    module.__file__ = str(checkout / "model.py")
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Random values for every parameter, so no bias or noise weight is zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if p.ndim <= 1 else 1.0))


@torch.no_grad()
def reference_outputs(g: torch.nn.Module, d: torch.nn.Module, latent_avg: torch.Tensor, seed: int,
                      batch: int = 2) -> dict:
    """Inputs and rosinality's outputs for them."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, g.style_dim, generator=gen)
    z2 = torch.randn(batch, g.style_dim, generator=gen)
    noise = [torch.randn(getattr(g.noises, f"noise_{i}").shape, generator=gen) for i in range(g.num_layers)]
    w, w2 = g.style(z), g.style(z2)
    _, w_trunc = g([z], truncation=0.7, truncation_latent=latent_avg, return_latents=True, randomize_noise=False)
    img_const, _ = g([w], input_is_latent=True, randomize_noise=False)
    img_noise, _ = g([w], input_is_latent=True, noise=noise)
    img_mixed, ws_mixed = g([w, w2], input_is_latent=True, inject_index=3, randomize_noise=False,
                            return_latents=True)
    d_image = torch.rand(batch, 3, g.size, g.size, generator=gen) * 2 - 1
    return dict(z=z, w=w, latent_avg=latent_avg, w_trunc=w_trunc[:, 0], noise=noise, img_const=img_const,
                img_noise=img_noise, ws_mixed=ws_mixed, img_mixed=img_mixed, d_image=d_image, d_score=d(d_image))


def write(model: types.ModuleType, out: Path, size: int, style_dim: int, n_mlp: int, seed: int) -> list[Path]:
    """The training and the converted checkpoint, each with its reference outputs."""
    g, g_ema = model.Generator(size, style_dim, n_mlp), model.Generator(size, style_dim, n_mlp)
    d = model.Discriminator(size)
    for net, offset in ((g, 0), (g_ema, 1), (d, 2)):
        randomise(net, seed + offset)
        net.eval()
    latent_avg = g_ema.mean_latent(4096)[0]
    g_optim = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=0.002, betas=(0.0, 0.99))
    img, _ = g([torch.randn(2, style_dim)])
    (img.mean() + d(img.detach()).mean()).backward()  # one step, so the optimisers hold state as in training
    g_optim.step()
    d_optim.step()
    g_optim.zero_grad()
    d_optim.zero_grad()
    args = argparse.Namespace(size=size, latent=style_dim, n_mlp=n_mlp, channel_multiplier=2, r1=10, path_regularize=2,
                              mixing=0.9, augment=False, augment_p=0, ada_target=0.6, batch=16, iter=800000)
    out.mkdir(parents=True, exist_ok=True)
    checkpoints = {
        f"train_{size}": {"g": g.state_dict(), "d": d.state_dict(), "g_ema": g_ema.state_dict(),
                          "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(), "args": args,
                          "ada_aug_p": 0.0},
        f"converted_{size}": {"g_ema": g_ema.state_dict(), "latent_avg": latent_avg, "d": d.state_dict()},
    }
    paths = []
    for name, checkpoint in checkpoints.items():
        path = out / f"{name}.pt"
        torch.save(checkpoint, path)
        torch.save(reference_outputs(g_ema, d, latent_avg, seed + 10), out / f"{name}.outputs.pt")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="rosinality/stylegan2-pytorch checkout")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=int, default=8, help="channels at 4² to 32² (512 in the original)")
    parser.add_argument("--style-dim", type=int, default=32)
    parser.add_argument("--n-mlp", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = import_model(args.official.resolve(), args.width)
    for path in write(model, args.out, args.size, args.style_dim, args.n_mlp, args.seed):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB) and {path.stem}.outputs.pt")


if __name__ == "__main__":
    main()
