"""``embed edit <op>``: edits of already embedded images, from their latents files, in seconds.

    embed edit activation A.pt B.pt --layer b16.conv0 --op copy --mask right --out runs/edit
    embed edit transfer A.pt B.pt mouth.png --out runs/edit             # attribute transfer, layer 4
    embed edit morph A.pt B.pt --frames 8 [--mask box:0.2,0.5,0.8,0.9] --out runs/edit
    embed edit jitter A.pt --count 8 --sigma 0.3 --out runs/edit      # random jittering (DGP)
    embed edit mix CONTENT.pt STYLE.pt --rows 4 --out runs/edit
    embed edit arithmetic BASE.pt SOURCE.pt TARGET.pt --strength 1 --out runs/edit

Every subcommand also reads a recipe: ``embed edit morph --config recipes/morph.yaml``; latents
files given after it replace the recipe's. The generator is the one recorded in the first
latents file unless ``--generator`` names another. Results of DGP fits render with their own
fine-tuned weights on top of it: ``morph`` moves the weights from A's to B's with the code
(so it ends on both fits), ``jitter`` renders with the fit's own weights, ``activation``/``transfer``
take each image's activations from its own generator and render the later layers with that of
``styles_from``, ``arithmetic`` renders with the base's, and ``mix`` refuses two codes of
different fine-tuned generators.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import auto_cli

from callbacks.writer import save_png, to_pil
from datamodules.images import read_gray
from datamodules.masks import MaskSpec, blur, region_mask, shape_mask

from . import edits
from .checkpoints import DEFAULT_NAME, load_generator
from .generators import Generator
from .latents import Latents, generator_file, sha256
from .run_folder import atomic_write

log = logging.getLogger("embedding")


def _inputs(paths: list[str], override: str | None) -> list[tuple[Latents, Generator]]:
    """Each latents record with the generator it renders with; codes of different pretrained generators are refused.

    The pretrained generator is the one recorded in the first file that names one (its SHA-256
    checked), or ``override``; a DGP fit's record adds its own fine-tuned weights to it. Records
    with the same weights share one generator object.
    """
    records = [Latents.load(path) for path in paths]
    hashes = {r.metadata["generator_sha256"] for r in records if r.metadata.get("generator_sha256")}
    if len(hashes) > 1:
        listing = ", ".join(f"{r.path} ({r.source})" for r in records)
        raise ValueError(f"these codes were fitted with different generators: {listing}")
    named = [r for r in records if r.metadata.get("generator")]
    source = override or (named[0].source if named else DEFAULT_NAME)
    if override is None and named:
        named[0].check_generator_file(source)
    pretrained = load_generator(source).eval().to("cuda" if torch.cuda.is_available() else "cpu")
    generators: dict[Path | None, Generator] = {}
    for r in records:
        if r.weight_diff not in generators:
            generators[r.weight_diff] = r.generator(pretrained)
    return [(r, generators[r.weight_diff]) for r in records]


def _mask(spec: str | None, resolution: int, blur_sigma: float, invert: bool) -> torch.Tensor | None:
    """A ``[1, 1, R, R]`` mask from an image file, a half (``left``, ...), ``full`` or ``box:x0,y0,x1,y1``."""
    if spec is None:
        return None
    if Path(spec).is_file():
        mask = (read_gray(spec, resolution)[0] > 0.5).float()
    elif spec.startswith("box:"):
        try:
            box = tuple(float(v) for v in spec[4:].split(","))
        except ValueError as e:
            raise ValueError(f"mask {spec!r}: a box is box:x0,y0,x1,y1 with fractions of the image") from e
        mask = region_mask(MaskSpec("box", box=box).box, resolution)
    elif spec in ("full", "left", "right", "top", "bottom"):
        mask = shape_mask(MaskSpec(spec), resolution)
    else:
        raise ValueError(f"mask {spec!r}: no such file, and not full/left/right/top/bottom/box:x0,y0,x1,y1")
    mask = 1 - mask if invert else mask
    return blur(mask, blur_sigma)[None]


def _write_image(path: Path, image: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, image)
    log.info("wrote %s", path)


def _write_code(path: Path, code: edits.Code, like: Latents, override: str | None, what: str) -> None:
    """A latents record for an edited code that renders with ``like``'s generator (``render_latents``)."""
    source = override or like.source
    metadata = {"stem": path.stem, "generator": source, "generator_sha256": sha256(generator_file(source)),
                "edit": what}
    Latents(code.w_plus, code.noise, metadata, like.weight_diff).save(path)
    log.info("wrote %s", path)


def activation(
    a: str,
    b: str,
    layer: str = "4",
    op: Literal["copy", "average", "channels"] = "copy",
    mask: str | None = None,
    mask_blur: float = 0.0,
    invert_mask: bool = False,
    lam: float = 0.5,
    channels: list[int] | None = None,
    styles_from: Literal["a", "b"] = "a",
    generator: str | None = None,
    out: str = "runs/edit",
) -> Path:
    """Activation-tensor operation between two embedded images (Image2StyleGAN++ Sec. 5).

    Args:
        a: latents file of image A (``latents/<stem>.pt`` of a run folder).
        b: latents file of image B.
        layer: a layer name (``b16.conv0``) or the paper's 1-based layer number.
        op: ``copy`` (B's activations under the mask), ``average`` (lam·A + (1 − lam)·B) or
            ``channels`` (the listed channels from A, the rest from B).
        mask: for ``copy``: an image file (white = copy from B), ``left``/``right``/``top``/
            ``bottom``/``full`` or ``box:x0,y0,x1,y1`` (fractions).
        mask_blur: Gaussian blur of the mask, in output pixels.
        invert_mask: copy from B where the mask is black instead.
        lam: weight of A for ``average``.
        channels: channels taken from A for ``channels``.
        styles_from: whose W+ rows the layers after ``layer`` use.
        generator: the pretrained generator to render with (default: the one recorded in ``a``).
        out: output folder.
    """
    (record_a, G), (record_b, G_b) = _inputs([a, b], generator)
    code_a, code_b = edits.code_from(record_a, G), edits.code_from(record_b, G_b)
    name = edits.resolve_layer(G, layer)
    image = edits.activation_edit(G, code_a, code_b, name, op, _mask(mask, G.resolution, mask_blur, invert_mask),
                                  lam, channels or [], styles_from, G_b)
    path = Path(out) / f"{code_a.name}+{code_b.name}.{op}.{name}.png"
    _write_image(path, image[0])
    return path


def transfer(
    a: str,
    b: str,
    mask: str,
    layer: str = "4",
    mask_blur: float = 0.0,
    invert_mask: bool = False,
    generator: str | None = None,
    out: str = "runs/edit",
) -> Path:
    """Attribute-level feature transfer (Image2StyleGAN++ Sec. 7.6): B's layer-4 activations under the mask, A's styles.

    Args:
        a: latents file of the base image (it gives the style codes of the remaining layers).
        b: latents file of the attribute image.
        mask: the region to take from B: an image file (white = B), a half or ``box:x0,y0,x1,y1``.
        layer: the layer whose activations are copied (default the 4th, as in the paper).
        mask_blur: Gaussian blur of the mask, in output pixels.
        invert_mask: take B where the mask is black instead.
        generator: the pretrained generator to render with (default: the one recorded in ``a``).
        out: output folder.
    """
    return activation(a, b, layer, "copy", mask, mask_blur, invert_mask, generator=generator, out=out)


def morph(
    a: str,
    b: str,
    frames: int = 8,
    mask: str | None = None,
    mask_blur: float = 0.0,
    invert_mask: bool = False,
    gif: bool = True,
    frame_ms: int = 120,
    generator: str | None = None,
    out: str = "runs/edit",
) -> Path:
    """Morph between two embedded images (W+ and noise), optionally only inside a mask.

    Args:
        a: latents file of the first image (frame 0).
        b: latents file of the last image.
        frames: number of frames, both ends included.
        mask: morph only here (image file, half or ``box:x0,y0,x1,y1``); outside, ``a`` stays.
        mask_blur: Gaussian blur of the mask, in output pixels.
        invert_mask: morph where the mask is black instead.
        gif: also write an animated GIF (there and back).
        frame_ms: GIF frame duration in milliseconds.
        generator: the pretrained generator to render with (default: the one recorded in ``a``).
        out: output folder; frames go to ``<a>~<b>/frame_NNN.png``, a strip to ``<a>~<b>.png``.
    """
    (record_a, G), (record_b, G_b) = _inputs([a, b], generator)
    code_a, code_b = edits.code_from(record_a, G), edits.code_from(record_b, G_b)
    images = edits.morph(G, code_a, code_b, frames, _mask(mask, G.resolution, mask_blur, invert_mask), G_b)
    stem = f"{code_a.name}~{code_b.name}" + (".masked" if mask else "")
    return _write_frames(Path(out), stem, images, gif, frame_ms)


def jitter(
    latents: str,
    count: int = 8,
    sigma: float = 0.3,
    seed: int = 0,
    gif: bool = False,
    frame_ms: int = 120,
    generator: str | None = None,
    out: str = "runs/edit",
) -> Path:
    """Random jittering (DGP): renders of the code with Gaussian noise on its W+, σ in units of W's spread.

    A DGP fit renders with its own fine-tuned generator, and one fitted in W (``latent_space: w``)
    gets the same noise on every row, so its variants stay in W.

    Args:
        latents: latents file of the embedded image.
        count: number of variants.
        sigma: noise scale, in units of W's per-channel standard deviation (0 gives the image itself).
        seed: seed of the noise.
        gif: also write an animated GIF of the variants.
        frame_ms: GIF frame duration in milliseconds.
        generator: the pretrained generator to render with (default: the one recorded in ``latents``).
        out: output folder; variants go to ``<stem>.jitter/frame_NNN.png``, a strip to ``<stem>.jitter.png``.
    """
    ((record, G),) = _inputs([latents], generator)
    code = edits.code_from(record, G)
    variants = edits.jitter(G, code, count, sigma, seed, shared_rows=record.metadata.get("latent_space") == "w")
    images = torch.cat([edits.render_codes(G, [v]) for v in variants])
    return _write_frames(Path(out), f"{code.name}.jitter", images, gif, frame_ms)


def _write_frames(out: Path, stem: str, images: torch.Tensor, gif: bool, frame_ms: int) -> Path:
    """``<stem>/frame_NNN.png`` per image, a strip ``<stem>.png`` and, with ``gif``, ``<stem>.gif`` (there and back)."""
    for i, image in enumerate(images):
        _write_image(out / stem / f"frame_{i:03d}.png", image)
    _write_image(out / f"{stem}.png", torch.cat(list(images), dim=-1))
    if gif:
        pictures = [to_pil(image) for image in images]
        loop = pictures + pictures[-2:0:-1]
        path = out / f"{stem}.gif"
        atomic_write(path, lambda f: loop[0].save(f, format="GIF", save_all=True, append_images=loop[1:],
                                                  duration=frame_ms, loop=0))
        log.info("wrote %s", path)
    return out / f"{stem}.png"


def mix(content: str, style: str, rows: int = 4, generator: str | None = None, out: str = "runs/edit") -> Path:
    """Style transfer by W+ row mixing (Image2StyleGAN): the first rows from the content code, the rest from the style.

    Args:
        content: latents file of the content image.
        style: latents file of the style image.
        rows: how many leading W+ rows (coarse layers: pose, shape) come from ``content``.
        generator: the pretrained generator to render with (default: the one recorded in ``content``).
        out: output folder; the result's render and its latents file (re-renderable).
    """
    (record_c, G), (record_s, G_s) = _inputs([content, style], generator)
    if G_s is not G:
        raise ValueError(f"{content} and {style} render with different fine-tuned generators (DGP fits); "
                         "row mixing needs two codes of one generator")
    code = edits.mix_rows(edits.code_from(record_c, G), edits.code_from(record_s, G), rows)
    path = Path(out) / f"{code.name}.png"
    _write_image(path, edits.render_codes(G, [code])[0])
    _write_code(path.with_suffix(".pt"), code, record_c, generator, f"mix rows={rows} content={content} style={style}")
    return path


def arithmetic(
    base: str, source: str, target: str, strength: float = 1.0, generator: str | None = None, out: str = "runs/edit"
) -> Path:
    """Expression transfer (Image2StyleGAN): ``base + strength·(target − source)``.

    Args:
        base: latents file of the person to edit.
        source: latents file of another person with the starting expression (e.g. neutral).
        target: latents file of that same other person with the wanted expression (e.g. smiling).
        strength: how much of the difference to add.
        generator: the pretrained generator to render with (default: the one recorded in ``base``).
        out: output folder; the result's render and its latents file (re-renderable).
    """
    inputs = _inputs([base, source, target], generator)
    record, G = inputs[0]
    codes = [edits.code_from(r, G) for r, _ in inputs]
    code = edits.add_difference(*codes, strength=strength)
    path = Path(out) / f"{codes[0].name}+{codes[2].name}-{codes[1].name}.png"
    _write_image(path, edits.render_codes(G, [code])[0])
    _write_code(path.with_suffix(".pt"), code, record, generator,
                f"arithmetic {base} + {strength}*({target} - {source})")
    return path


COMMANDS = {"activation": activation, "transfer": transfer, "morph": morph, "jitter": jitter, "mix": mix,
            "arithmetic": arithmetic}


def main(args: list[str] | None = None) -> None:
    """Run one edit subcommand; errors about inputs end with a message naming the file, exit code 1."""
    with torch.no_grad():
        try:
            auto_cli(COMMANDS, args=args, as_positional=True, prog="embed edit")
        except (ValueError, FileNotFoundError, OSError) as e:
            log.error("%s", e)
            raise SystemExit(1) from e
