"""``embed encode``: embed photos with an encoder in one forward pass, into a run folder like ``embed fit``'s.

    embed encode path/to/photos --crop "[25, 57, 153, 185]" --out runs/encode
    embed edit attribute runs/encode/latents/<stem>.pt smile.pt        # edit the codes as any fit's

Each photo gets ``latents/<stem>.pt`` (+ ``.npz``; the encoder's W+ code with the generator's
constant noise), ``images/<stem>.png`` (its render) and a ``metrics.csv`` row (phase ``encoder``,
step 0). The encoder is the one shipped for the embedded default generator unless ``--encoder``
names another; the generator is the one the encoder was trained for unless ``--generator`` does.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from jsonargparse import auto_cli

from embedding.checkpoints import DEFAULT_NAME, load_generator, provenance, resolve_file
from embedding.commands.positional import join_positionals
from embedding.fitting.results import FitResult, write_result
from embedding.fitting.run_folder import RunFolder
from embedding.images import ImageReadError, read_image, resolve_images, unique_stems
from embedding.latents import Latents
from embedding.methods.encoder import load_encoder, read_encoder_metadata
from embedding.metrics import measure, write_metrics
from embedding.progress import Progress

log = logging.getLogger("embedding")
Crop = tuple[int, int, int, int] | None


def encode(images: str | list[str], encoder: str = DEFAULT_NAME, generator: str | None = None, crop: Crop = None,
           batch_size: int = 16, identity: bool = False, out: str = "runs/encode") -> Path:
    """Embed photos with an encoder: latents files, renders and their PSNR/SSIM/LPIPS, and the seconds per photo.

    Args:
        images: a folder, a file, a glob, or a list of those.
        encoder: an encoder file (``embed train`` with ``recipes/train_encoder.yaml``) or ``default``.
        generator: the generator the codes are for (default: the one the encoder was trained for).
        crop: pixel box (left, top, right, bottom) cut from every photo first, as for training.
        batch_size: photos encoded at once.
        identity: also measure the identity distance and landmark error (faces).
        out: the run folder.
    """
    paths, missing = resolve_images(images)  # inputs and networks are checked before any network is loaded
    for entry, reason in missing:
        log.warning("skipping %s: %s", entry, reason)
    if not paths:
        raise ValueError(f"no images found in {images}")
    source = generator or read_encoder_metadata(encoder).get("generator") or DEFAULT_NAME
    resolve_file(source, "generator")
    net = load_encoder(encoder)
    g = load_generator(source)
    if (g.resolution, g.num_ws, g.w_dim) != (net.resolution, net.num_ws, net.w_dim):
        raise ValueError(f"the encoder {encoder} gives {net.num_ws}×{net.w_dim} codes of {net.resolution}² images; "
                         f"the generator {source} takes {g.num_ws}×{g.w_dim} codes and renders {g.resolution}²")
    meta = {"method": "encoder", "encoder": str(encoder), **provenance(source), "resolution": g.resolution,
            "crop": crop}
    noise = [n.detach().float().cpu() for n in g.synthesis.const_noise()]
    folder, rows, seconds, done = RunFolder(out), [], 0.0, 0
    named = list(zip(unique_stems(paths), paths, strict=True))
    with Progress(len(named), "encode", "photo") as shown:
        for start in range(0, len(named), batch_size):
            group = named[start : start + batch_size]
            chunk, targets = [], []
            for stem, path in group:
                try:
                    targets.append(read_image(path, g.resolution, crop)[0])
                    chunk.append(stem)
                except (ImageReadError, ValueError) as e:
                    log.warning("skipping %s: %s", path, e)
            if chunk:
                target = torch.stack(targets)
                begin = time.perf_counter()
                with torch.no_grad():
                    codes = net(target)
                    renders = g.synthesis(codes, noise_mode="const").clamp(-1, 1)
                seconds += time.perf_counter() - begin
                for stem, code, render in zip(chunk, codes, renders, strict=True):
                    write_result(folder, stem, render, FitResult(Latents(code, noise, {**meta, "stem": stem})))
                rows += measure(renders, target, torch.ones_like(target[:, :1]), chunk, "encoder", 0, identity)
                done += len(chunk)
            shown.update(len(group))
    if not done:
        raise ValueError(f"none of the {len(paths)} image(s) in {images} could be read")
    write_metrics(folder, rows)
    mean = lambda key: sum(float(r[key]) for r in rows) / len(rows)  # noqa: E731
    log.info("%d photo(s) in %.4f s each (encode + render); PSNR %.2f dB, SSIM %.3f, LPIPS %.3f; results in %s",
             done, seconds / done, mean("psnr"), mean("ssim"), mean("lpips"), folder.root)
    return folder.root


def main(args: list[str] | None = None) -> None:
    """Entry point of ``embed encode`` (``embed encode a.png b.png folder/`` takes them all)."""
    auto_cli(encode, args=join_positionals(sys.argv[1:] if args is None else args))


if __name__ == "__main__":
    main()
