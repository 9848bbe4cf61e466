"""``embed edit <op>``: edits of already embedded images, from their latents files, in seconds.

    embed edit activation A.pt B.pt --layer b16.conv0 --op copy --mask right --out runs/edit
    embed edit transfer A.pt B.pt mouth.png --out runs/edit             # attribute transfer, layer 4
    embed edit morph A.pt B.pt --frames 8 [--mask box:0.2,0.5,0.8,0.9] --out runs/edit
    embed edit jitter A.pt --count 8 --sigma 0.3 --out runs/edit      # random jittering (DGP)
    embed edit mix CONTENT.pt STYLE.pt --rows 4 --out runs/edit
    embed edit arithmetic BASE.pt SOURCE.pt TARGET.pt --strength 1 --out runs/edit
    embed edit direction sefa --rows "[0, 1, 2, 3]" --out pose.pt        # or: mean, boundary (InterFaceGAN)
    embed edit attribute A.pt pose.pt --strengths "[-2, -1, 0, 1, 2]" --out runs/edit
    embed edit constrain A.pt strokes.png --lam_code 1 --lam_real 0.01 --out runs/edit   # strokes: RGBA

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
from glob import glob
from pathlib import Path
from typing import Literal

import torch
from jsonargparse import auto_cli

from embedding.checkpoints import DEFAULT_NAME, load_discriminator, load_generator, provenance
from embedding.edits import directions
from embedding.edits import operations as edits
from embedding.edits.constrained import constrained_edit
from embedding.files import atomic_write
from embedding.generators import Generator
from embedding.images import mask_from_spec, read_image, read_strokes, save_png, to_pil
from embedding.latents import Latents

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


def _write_image(path: Path, image: torch.Tensor) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, image)
    log.info("wrote %s", path)


def _write_code(path: Path, code: edits.Code, like: Latents, override: str | None, what: str) -> None:
    """A latents record for an edited code that renders with ``like``'s generator (``render_latents``)."""
    source = override or like.source
    metadata = {"stem": path.stem, **provenance(source), "edit": what}
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
    paste_back: bool = False,
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
        paste_back: also paste the result into the photo A was aligned from (``embed align``'s record),
            ``<result>.pasted.png`` beside it.
    """
    (record_a, G), (record_b, G_b) = _inputs([a, b], generator)
    code_a, code_b = edits.code_from(record_a, G), edits.code_from(record_b, G_b)
    name = edits.resolve_layer(G, layer)
    region = mask_from_spec(mask, G.resolution, mask_blur, invert_mask)
    image = edits.activation_edit(G, code_a, code_b, name, op, region, lam, channels or [], styles_from, G_b)
    path = Path(out) / f"{code_a.name}+{code_b.name}.{op}.{name}.png"
    _write_image(path, image[0])
    if paste_back:
        _paste_back(a, image, path.parent, [f"{path.stem}.pasted"])
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
    paste_back: bool = False,
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
        paste_back: also paste the result into the photo A was aligned from (``embed align``'s record),
            ``<result>.pasted.png`` beside it.
    """
    return activation(a, b, layer, "copy", mask, mask_blur, invert_mask, generator=generator, out=out,
                      paste_back=paste_back)


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
    paste_back: bool = False,
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
        paste_back: also paste every frame into the photo ``a`` was aligned from (``embed align``'s
            record), ``<a>~<b>.pasted/frame_NNN.png``.
    """
    (record_a, G), (record_b, G_b) = _inputs([a, b], generator)
    code_a, code_b = edits.code_from(record_a, G), edits.code_from(record_b, G_b)
    images = edits.morph(G, code_a, code_b, frames, mask_from_spec(mask, G.resolution, mask_blur, invert_mask), G_b)
    stem = f"{code_a.name}~{code_b.name}" + (".masked" if mask else "")
    strip = _write_frames(Path(out), stem, images, gif, frame_ms)
    if paste_back:
        _paste_back(a, images, Path(out) / f"{stem}.pasted", [f"frame_{i:03d}" for i in range(len(images))])
    return strip


def jitter(
    latents: str,
    count: int = 8,
    sigma: float = 0.3,
    seed: int = 0,
    gif: bool = False,
    frame_ms: int = 120,
    generator: str | None = None,
    out: str = "runs/edit",
    paste_back: bool = False,
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
        paste_back: also paste every variant into the photo the image was aligned from (``embed align``'s
            record), ``<stem>.jitter.pasted/frame_NNN.png``.
    """
    ((record, G),) = _inputs([latents], generator)
    code = edits.code_from(record, G)
    variants = edits.jitter(G, code, count, sigma, seed, shared_rows=record.metadata.get("latent_space") == "w")
    images = torch.cat([edits.render_codes(G, [v]) for v in variants])
    strip = _write_frames(Path(out), f"{code.name}.jitter", images, gif, frame_ms)
    if paste_back:
        _paste_back(latents, images, Path(out) / f"{code.name}.jitter.pasted",
                    [f"frame_{i:03d}" for i in range(len(images))])
    return strip


def _paste_back(latents: str, frames: torch.Tensor, folder: Path, names: list[str]) -> None:
    """Every frame pasted into the photo the image of ``latents`` was aligned from, ``<folder>/<name>.png``."""
    from embedding.faces.paste import paste_frames

    for path in paste_frames(latents, frames, [folder / f"{name}.png" for name in names]):
        log.info("wrote %s", path)


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


def mix(content: str, style: str, rows: int = 4, generator: str | None = None, out: str = "runs/edit",
        paste_back: bool = False) -> Path:
    """Style transfer by W+ row mixing (Image2StyleGAN): the first rows from the content code, the rest from the style.

    Args:
        content: latents file of the content image.
        style: latents file of the style image.
        rows: how many leading W+ rows (coarse layers: pose, shape) come from ``content``.
        generator: the pretrained generator to render with (default: the one recorded in ``content``).
        out: output folder; the result's render and its latents file (re-renderable).
        paste_back: also paste the result into the photo the content image was aligned from (``embed align``'s record),
            ``<result>.pasted.png`` beside it.
    """
    (record_c, G), (record_s, G_s) = _inputs([content, style], generator)
    if G_s is not G:
        raise ValueError(f"{content} and {style} render with different fine-tuned generators (DGP fits); "
                         "row mixing needs two codes of one generator")
    code = edits.mix_rows(edits.code_from(record_c, G), edits.code_from(record_s, G), rows, G.synthesis.noise_rows)
    path = Path(out) / f"{code.name}.png"
    image = edits.render_codes(G, [code])
    _write_image(path, image[0])
    _write_code(path.with_suffix(".pt"), code, record_c, generator, f"mix rows={rows} content={content} style={style}")
    if paste_back:
        _paste_back(content, image, path.parent, [f"{path.stem}.pasted"])
    return path


def arithmetic(
    base: str, source: str, target: str, strength: float = 1.0, generator: str | None = None, out: str = "runs/edit",
    paste_back: bool = False,
) -> Path:
    """Expression transfer (Image2StyleGAN): ``base + strength·(target − source)``.

    Args:
        base: latents file of the person to edit.
        source: latents file of another person with the starting expression (e.g. neutral).
        target: latents file of that same other person with the wanted expression (e.g. smiling).
        strength: how much of the difference to add.
        generator: the pretrained generator to render with (default: the one recorded in ``base``).
        out: output folder; the result's render and its latents file (re-renderable).
        paste_back: also paste the result into the photo the base was aligned from (``embed align``'s record),
            ``<result>.pasted.png`` beside it.
    """
    inputs = _inputs([base, source, target], generator)
    record, G = inputs[0]
    codes = [edits.code_from(r, G) for r, _ in inputs]
    code = edits.add_difference(*codes, strength=strength)
    path = Path(out) / f"{codes[0].name}+{codes[2].name}-{codes[1].name}.png"
    image = edits.render_codes(G, [code])
    _write_image(path, image[0])
    _write_code(path.with_suffix(".pt"), code, record, generator,
                f"arithmetic {base} + {strength}*({target} - {source})")
    if paste_back:
        _paste_back(base, image, path.parent, [f"{path.stem}.pasted"])
    return path


def attribute(latents: str, direction: str, strengths: list[float] | None = None, generator: str | None = None,
              out: str = "runs/edit", paste_back: bool = False) -> Path:
    """Attribute edit: the code moved along a direction file (``embed edit direction ...``), one frame per strength.

    Suits W and W+ fits (``--model.steps "{WI: N, Mkn: 0}"``), encoder codes and PTI: a W+ & noise
    fit keeps the photo's detail in its fitted noise maps, which don't follow the edit.

    Args:
        latents: latents file of the embedded image.
        direction: a direction file.
        strengths: multiples of the direction, one frame each (default −8, −4, 0, 4, 8; 0 is the image). A
            boundary or SeFa direction has unit length in W (codes lie some 10 to 30 units from the mean).
        generator: the pretrained generator to render with (default: the one recorded in ``latents``).
        out: output folder; writes the strip ``<stem>.<direction>.png`` and, for each strength,
            ``<stem>.<direction>/<strength>.pt``, a latents file of the edited code.
        paste_back: also paste every frame into the photo the image was aligned from (``embed align``'s
            record), ``<stem>.<direction>.pasted/<strength>.png``.
    """
    strengths = [-8.0, -4.0, 0.0, 4.0, 8.0] if strengths is None else strengths
    ((record, G),) = _inputs([latents], generator)
    if record.metadata.get("fitted_noise"):
        log.warning("%s was fitted with its noise maps, which hold much of the photo and don't follow the edit: "
                    "attribute edits show best on W or W+ fits", latents)
    move = directions.Direction.load(direction).check(G, direction)
    code = edits.code_from(record, G)
    name = f"{code.name}.{Path(direction).stem}"
    moved = [edits.Code(move.apply(code.w_plus, s), list(code.noise), f"{name}@{s:g}") for s in strengths]
    for s, c in zip(strengths, moved, strict=True):
        _write_code(Path(out) / name / f"{s:g}.pt", c, record, generator, f"attribute {direction} strength {s:g}")
    frames = torch.stack([edits.render_codes(G, [c])[0] for c in moved])
    _write_image(Path(out) / f"{name}.png", torch.cat(list(frames), dim=-1))
    if paste_back:
        _paste_back(latents, frames, Path(out) / f"{name}.pasted", [f"{s:g}" for s in strengths])
    return Path(out) / f"{name}.png"


def constrain(latents: str, constraint: str, mask: str | None = None, steps: int = 200, lr: float = 0.01,
              lam_code: float = 1.0, lam_real: float = 0.01, lam_keep: float = 1.0, discriminator: str | None = None,
              generator: str | None = None, out: str = "runs/edit", paste_back: bool = False) -> Path:
    """Constrained edit: optimise the code so its render meets a constraint, close to the fit and realistic.

    Minimises ``U(G(w)) + lam_code·‖w − w0‖² − lam_real·D(G(w))`` over W+ from the fitted code
    ``w0``; ``U`` is the squared difference to ``constraint`` inside its mask plus ``lam_keep`` times
    the squared difference to the fitted render outside it. Logs the constraint error, the
    discriminator score and the distances before and after. Suits W and W+ fits; a W+ & noise
    fit's noise maps hold the photo's detail and don't follow the edit.

    Args:
        latents: latents file of the embedded image.
        constraint: colour strokes on a transparent layer (alpha marks them), or an image with ``mask``.
        mask: where the constraint applies when it has no alpha (image file, half, ``box:x0,y0,x1,y1``).
        steps: Adam steps.
        lr: Adam learning rate.
        lam_code: λ1, weight of the distance to the fitted code.
        lam_real: λ2, weight of the discriminator's realism score.
        lam_keep: weight of the change outside the mask (0: the lecture's objective, where the whole
            face drifts toward the constraint's colours).
        discriminator: its checkpoint (default: the generator's source, which holds D for NVIDIA and
            rosinality files and the embedded default).
        generator: the pretrained generator to render with (default: the one recorded in ``latents``).
        out: output folder; writes ``<stem>.constrained.png``, its latents file and a strip
            ``<stem>.constrained.strip.png`` (fit, constraint over it, edit).
        paste_back: also paste the result into the photo the fitted image was aligned from (``embed align``'s record),
            ``<result>.pasted.png`` beside it.
    """
    ((record, G),) = _inputs([latents], generator)
    res = G.resolution
    if mask is None:
        target, region = read_strokes(constraint, res)
    else:
        target, region = read_image(constraint, res)[0], mask_from_spec(mask, res, 0.0, False)[0]
    D = load_discriminator(discriminator or generator or record.source).to(G.w_avg.device)
    code = edits.code_from(record, G)
    edited, report = constrained_edit(G, D, code, target, region, steps, lr, lam_code, lam_real, lam_keep)
    for line in report.lines():
        log.info("%s", line)
    before, after = edits.render_codes(G, [code])[0].cpu(), edits.render_codes(G, [edited])[0].cpu()
    shown = region * target + (1 - region) * before
    path = Path(out) / f"{edited.name}.png"
    _write_image(path, after)
    _write_image(Path(out) / f"{edited.name}.strip.png", torch.cat([before, shown, after], dim=-1))
    _write_code(path.with_suffix(".pt"), edited, record, generator,
                f"constrained by {constraint} (lam_code {lam_code}, lam_real {lam_real}, lam_keep {lam_keep}, "
                f"{steps} steps)")
    if paste_back:
        _paste_back(latents, after[None], path.parent, [f"{path.stem}.pasted"])
    return path


def direction_mean(without: str | list[str], with_attribute: str | list[str], out: str = "direction.pt") -> Path:
    """A direction as the mean difference of two groups of fitted codes (latents files or their folders).

    Args:
        without: latents files (a folder, a glob in quotes, or a list) of images without the attribute.
        with_attribute: latents files of images with it.
        out: the direction file (``[num_ws, w_dim]``, every row).
    """
    groups = [[Latents.load(p) for p in _latents_files(g)] for g in (without, with_attribute)]
    vector = directions.mean_difference(*[[r.w_plus for r in g] for g in groups])
    source = groups[0][0]
    meta = {"how": "mean difference", "without": len(groups[0]), "with": len(groups[1]),
            "generator": source.source, "generator_sha256": source.metadata.get("generator_sha256")}
    return _write_direction(directions.Direction(vector, None, meta), out)


def direction_boundary(attribute: Literal["age", "male", "smile"], generator: str = DEFAULT_NAME, samples: int = 2000,
                       extremes: float = 0.3, truncation: float = 0.7, seed: int = 0,
                       face_box: str | list[float] = "auto", out: str = "direction.pt") -> Path:
    """A direction as the normal of a linear boundary in W between generator samples scored by the face toolkit.

    Args:
        attribute: ``age`` (years), ``male`` (probability) or ``smile`` (probability of a happy expression),
            as face-api's attribute networks score the renders.
        generator: the generator to sample.
        samples: random codes rendered and scored.
        extremes: the fraction of highest and of lowest scored codes the boundary separates.
        truncation: ψ of the samples.
        seed: seed of the samples.
        face_box: where the face is in the renders, which the attribute networks read: ``auto`` (the
            whole render under 256², else the box FFHQ alignment implies), ``whole``, ``ffhq`` or fractions.
        out: the direction file (``[w_dim]``, unit length, every row; toward a higher score).
    """
    from embedding.faces.attributes import ATTRIBUTE_SCORES, face_attributes
    from embedding.faces.crop import resolve_face_box

    G = load_generator(generator).eval().to("cuda" if torch.cuda.is_available() else "cpu")
    score, box = ATTRIBUTE_SCORES[attribute], resolve_face_box(face_box, G.resolution)
    vector = directions.linear_boundary(G, lambda images: score(face_attributes(images, box=box)), samples,
                                        extremes, truncation, seed=seed)
    meta = {"how": f"linear boundary of {attribute}", "samples": samples, **provenance(generator)}
    return _write_direction(directions.Direction(vector, None, meta), out)


def direction_sefa(generator: str = DEFAULT_NAME, rows: list[int] | None = None, index: int = 0,
                   out: str = "direction.pt") -> Path:
    """A direction by closed-form factorization of the generator's style weights (SeFa), unsupervised.

    Args:
        generator: the generator.
        rows: the W+ rows (0-based conv layers) whose style weights are factorized and which the
            direction moves (default: all).
        index: which direction, 0 the strongest.
        out: the direction file (``[w_dim]``, unit length, on ``rows``).
    """
    G = load_generator(generator)
    vectors, values = directions.sefa(G, rows, index + 1)
    meta = {"how": f"SeFa direction {index} (eigenvalue {float(values[index]):.3g})", **provenance(generator)}
    return _write_direction(directions.Direction(vectors[index], rows, meta), out)


def _latents_files(spec: str | list[str]) -> list[Path]:
    entries = [spec] if isinstance(spec, str) else spec
    found = sorted(p for e in entries for p in (Path(e).glob("*.pt") if Path(e).is_dir() else map(Path, glob(e))))
    if not found:
        raise ValueError(f"no latents files in {spec}")
    return found


def _write_direction(direction: directions.Direction, out: str) -> Path:
    direction.save(out)
    log.info("wrote %s (%s, |d| = %.3f)", out, direction.metadata["how"], direction.vector.norm())
    return Path(out)


COMMANDS = {"activation": activation, "transfer": transfer, "morph": morph, "jitter": jitter, "mix": mix,
            "arithmetic": arithmetic, "attribute": attribute, "constrain": constrain,
            "direction": {"_help": "Make a direction file for embed edit attribute: the mean difference of two groups "
                                   "of codes, a linear boundary between scored samples, or SeFa.",
                          "mean": direction_mean, "boundary": direction_boundary, "sefa": direction_sefa}}


def main(args: list[str] | None = None) -> None:
    """Run one edit subcommand; errors about inputs end with a message naming the file, exit code 1."""
    with torch.no_grad():
        try:
            auto_cli(COMMANDS, args=args, as_positional=True, prog="embed edit")
        except (ValueError, FileNotFoundError, OSError) as e:
            log.error("%s", e)
            raise SystemExit(1) from e
