"""``embed swap <op>``: embed photos with the Swapping Autoencoder (one forward pass) and edit their codes.

    embed swap encode path/to/photos --out runs/swap          # codes/<stem>.pt, images/<stem>.png, metrics.csv
    embed swap mix A.jpg B.jpg [--mask box:0.2,0.5,0.8,0.9] [--strength 0.7] --out runs/swap
    embed swap grid A.jpg B.jpg C.jpg D.jpg --out runs/swap   # every structure with every texture
    embed swap direction path/to/women path/to/men --out runs/swap/male.pt   # mean texture difference
    embed swap arithmetic A.jpg runs/swap/male.pt --strengths "[0, 1, 2, 3]" --out runs/swap

Inputs are photos (cropped like the training data with ``--crop``) or codes files written by
``encode``. The autoencoder is the embedded default unless ``--autoencoder`` names another (a
codes file's own autoencoder is checked by its SHA-256).
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from jsonargparse import auto_cli

from embedding.checkpoints import DEFAULT_NAME
from embedding.commands.positional import join_positionals
from embedding.files import atomic_write
from embedding.fitting.run_folder import RunFolder
from embedding.images import image_grid, mask_from_spec, read_image, resolve_images, save_png
from embedding.methods.swapping.codes import (
    SwapCodes,
    along_direction,
    encode,
    load_autoencoder,
    swap,
    texture_direction,
)
from embedding.methods.swapping.model import SwappingAutoencoder
from embedding.metrics import lpips_metric, psnr, ssim
from embedding.progress import Progress, progress

log = logging.getLogger("embedding")
Crop = tuple[int, int, int, int] | None


def _photos(images: str | list[str]) -> list[Path]:
    found, failures = resolve_images(images)
    for path, reason in failures:
        log.warning("skipping %s: %s", path, reason)
    if not found:
        raise ValueError(f"no images found in {images}")
    return found


def _codes(inputs: Sequence[str], source: str | None, crop: Crop) -> tuple[SwappingAutoencoder, list[SwapCodes]]:
    """The autoencoder and each input's codes: read from a codes file, or encoded from a photo."""
    stored = {p: SwapCodes.load(p) for p in inputs if Path(p).suffix == ".pt"}
    recorded = {c.metadata.get("autoencoder_sha256") for c in stored.values()} - {None}
    first = next(iter(stored.values()), None)
    ae, metadata = load_autoencoder(source or (first.metadata.get("autoencoder") if first else DEFAULT_NAME))
    if source is None and recorded and recorded != {metadata["autoencoder_sha256"]}:
        raise ValueError(f"{', '.join(inputs)}: codes of another autoencoder than {metadata['autoencoder']}; "
                         "name the one that made them with --autoencoder")
    codes = []
    for entry in progress(inputs, "swap codes", "input"):
        path = Path(entry)
        if entry in stored:
            codes.append(stored[entry].check(ae))
        else:
            image, _ = read_image(path, ae.resolution, crop)
            codes.extend(encode(ae, image[None], [path.stem], metadata))
    return ae, codes


def _write(path: Path, image: torch.Tensor) -> Path:
    save_png(path, image)
    log.info("wrote %s", path)
    return path


def encode_photos(images: str | list[str], autoencoder: str = DEFAULT_NAME, crop: Crop = None,
                  batch_size: int = 16, out: str = "runs/swap") -> Path:
    """Embed photos: codes, reconstructions and their PSNR/SSIM in a run folder, and the seconds per photo.

    Args:
        images: a folder, a file, a glob, or a list of those.
        autoencoder: checkpoint of a Swapping Autoencoder (project format) or ``default``.
        crop: pixel box (left, top, right, bottom) cut from every photo first, as for training.
        batch_size: photos encoded at once.
        out: the run folder: ``codes/<stem>.pt``, ``images/<stem>.png``, ``metrics.csv``.
    """
    ae, metadata = load_autoencoder(autoencoder)
    folder, paths = RunFolder(out), _photos(images)
    rows, seconds = [], 0.0
    with Progress(len(paths), "swap encode", "photo") as shown:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            photos = torch.stack([read_image(p, ae.resolution, crop)[0] for p in chunk])
            begin = time.perf_counter()
            with torch.no_grad():
                codes = encode(ae, photos, [p.stem for p in chunk], {**metadata, "crop": crop})
                recon = ae.decode(torch.stack([c.structure for c in codes]).to(photos.device),
                                  torch.stack([c.texture for c in codes])).cpu().clamp(-1, 1)
            seconds += time.perf_counter() - begin
            scores = zip(psnr(recon, photos), ssim(recon, photos), lpips_metric(recon, photos), strict=True)
            for code, image, (p, s, lp) in zip(codes, recon, scores, strict=True):
                save_png(folder.image_path(code.name), image)
                code.save(folder.root / "codes" / f"{code.name}.pt")
                rows.append({"image": code.name, "psnr": f"{p:.4f}", "ssim": f"{s:.4f}", "lpips": f"{lp:.4f}"})
            shown.update(len(chunk))
    with open(folder.metrics_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "psnr", "ssim", "lpips"])
        writer.writeheader()
        writer.writerows(rows)
    mean = lambda key: sum(float(r[key]) for r in rows) / len(rows)  # noqa: E731
    log.info("%d photo(s) in %.4f s each (encode + decode); PSNR %.2f dB, SSIM %.3f, LPIPS %.3f; results in %s",
             len(rows), seconds / len(rows), mean("psnr"), mean("ssim"), mean("lpips"), folder.root)
    return folder.root


def mix(structure: str, texture: str, strength: float = 1.0, mask: str | None = None, mask_blur: float = 0.0,
        invert_mask: bool = False, autoencoder: str | None = None, crop: Crop = None, out: str = "runs/swap") -> Path:
    """Swap: the structure of one photo with the texture of another, everywhere or inside a mask.

    Args:
        structure: photo (or codes file) giving the layout.
        texture: photo (or codes file) giving the texture.
        strength: how far the texture code moves from the structure photo's own (0) to the other's (1).
        mask: swap only here (image file, ``left``/``right``/``top``/``bottom``/``full`` or ``box:x0,y0,x1,y1``).
        mask_blur: Gaussian blur of the mask, in pixels.
        invert_mask: swap where the mask is black instead.
        autoencoder: the autoencoder (default: the one recorded in codes files, else the embedded default).
        crop: pixel box cut from photos first.
        out: output folder; writes ``<structure>+<texture>.swap.png``.
    """
    ae, (a, b) = _codes([structure, texture], autoencoder, crop)
    region = mask_from_spec(mask, ae.resolution, mask_blur, invert_mask)
    suffix = ".masked" if mask else ""
    return _write(Path(out) / f"{a.name}+{b.name}.swap{suffix}.png", swap(ae, a, b, strength, region)[0])


def grid(images: str | list[str], autoencoder: str = DEFAULT_NAME, crop: Crop = None,
         out: str = "runs/swap") -> Path:
    """Every structure with every texture: the photos on the first row (textures) and column (structures).

    Args:
        images: photos: a folder, a glob, or a list (``"[a.jpg, b.jpg]"``).
        autoencoder: the autoencoder.
        crop: pixel box cut from photos first.
        out: output folder; writes ``swap_grid.png`` (the diagonal holds the reconstructions).
    """
    paths = _photos(images)
    ae, metadata = load_autoencoder(autoencoder)
    photos = torch.stack([read_image(p, ae.resolution, crop)[0] for p in paths])
    codes = encode(ae, photos, [p.stem for p in paths], metadata)
    tiles = [torch.ones_like(photos[0]), *photos]
    for row, code in enumerate(codes):
        tiles.append(photos[row])
        tiles.extend(swap(ae, code, other)[0] for other in codes)
    sheet = image_grid(torch.stack(tiles).clamp(-1, 1), len(codes) + 1, padding=1, pad_value=1.0)
    return _write(Path(out) / "swap_grid.png", sheet)


def direction(from_images: str | list[str], to_images: str | list[str], autoencoder: str = DEFAULT_NAME,
              crop: Crop = None, out: str = "runs/swap/direction.pt") -> Path:
    """A texture direction: mean texture code of ``to_images`` minus that of ``from_images``.

    Args:
        from_images: photos without the attribute (a folder, files, a glob).
        to_images: photos with it.
        autoencoder: the autoencoder.
        crop: pixel box cut from photos first.
        out: the direction file (``direction`` ``[t]`` and how it was made).
    """
    sources, targets = [str(p) for p in _photos(from_images)], [str(p) for p in _photos(to_images)]
    _, codes = _codes(sources + targets, autoencoder, crop)
    from_codes, to_codes = codes[: len(sources)], codes[len(sources) :]
    vector = texture_direction(from_codes, to_codes)
    record = {"direction": vector, "metadata": {**from_codes[0].metadata, "from": len(from_codes),
                                                "to": len(to_codes), "stem": None}}
    atomic_write(Path(out), lambda f: torch.save(record, f))
    log.info("wrote %s (%d → %d photos, |d| = %.3f)", out, len(from_codes), len(to_codes), vector.norm())
    return Path(out)


def arithmetic(image: str, direction: str, strengths: list[float] | None = None, autoencoder: str | None = None,
               crop: Crop = None, out: str = "runs/swap") -> Path:
    """Texture arithmetic: the photo with its texture code moved along a direction, one frame per strength.

    Args:
        image: photo or codes file.
        direction: a direction file of ``embed swap direction``.
        strengths: multiples of the direction, one frame each (default 0, 0.5, 1, 1.5, 2).
        autoencoder: the autoencoder (default: the direction's).
        crop: pixel box cut from photos first.
        out: output folder; writes ``<image>.<direction>.png``, a strip.
    """
    strengths = [0.0, 0.5, 1.0, 1.5, 2.0] if strengths is None else strengths
    try:
        stored = torch.load(direction, map_location="cpu", weights_only=True)
        vector, meta = stored["direction"].float(), stored["metadata"]
    except Exception as e:  # a missing, corrupt or foreign file
        raise ValueError(f"{direction}: not a direction file of embed swap direction: {e}") from e
    ae, (code,) = _codes([image], autoencoder or meta.get("autoencoder"), crop)
    if vector.shape != code.texture.shape:
        raise ValueError(f"{direction}: a direction of {list(vector.shape)} for texture codes of "
                         f"{list(code.texture.shape)}")
    frames = along_direction(ae, code, vector, strengths).clamp(-1, 1)
    return _write(Path(out) / f"{code.name}.{Path(direction).stem}.png", torch.cat(list(frames), dim=-1))


COMMANDS = {"encode": encode_photos, "mix": mix, "grid": grid, "direction": direction, "arithmetic": arithmetic}


def main(args: list[str] | None = None) -> None:
    """Run one ``embed swap`` subcommand; errors about inputs end with a message naming the file, exit code 1."""
    args = sys.argv[1:] if args is None else list(args)
    if args and args[0] in ("encode", "grid"):  # one list of photos: `embed swap grid A.jpg B.jpg C.jpg`
        args = join_positionals(args, skip=1)
    try:
        auto_cli(COMMANDS, args=args, as_positional=True, prog="embed swap")
    except (ValueError, FileNotFoundError, OSError) as e:
        log.error("%s", e)
        raise SystemExit(1) from e
