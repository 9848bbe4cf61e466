"""Make the README gallery: run every application recipe and edit with ``embed``, then lay out the results.

    python docs/gallery.py                         # the shipped ImageNet VGG-16
    python docs/gallery.py --vgg-weights random    # random VGG-16, as the README's figures were made

Runs land in ``runs/gallery/<application>``; a rerun skips what is finished. Each figure is
``docs/gallery/<application>.png``: the inputs, then the renders the run wrote.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "celeba_6k" / "img"  # CelebA's aligned photos, not in the repository
CROP = (25, 57, 153, 185)  # their face square, as the default generator learned
TILE = 128
EDIT_PHOTOS = ["007454", "008799", "001434", "017827", "008229"]


def embed(*args: str) -> None:
    """Run the ``embed`` command of this environment, failing loudly."""
    command = [sys.executable, "-c", "from embedding.commands import main; main()", *args]
    print("$ embed", " ".join(args), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def photo(stem: str) -> Image.Image:
    return Image.open(PHOTOS / f"{stem}.jpg").convert("RGB").crop(CROP)


def tile_row(tiles: list[tuple[str, Image.Image]], tile: int = TILE) -> Image.Image:
    """One row of captioned tiles, ``tile`` pixels square."""
    sheet = Image.new("RGB", (tile * len(tiles), tile + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (caption, image) in enumerate(tiles):
        sheet.paste(image.convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS), (i * tile, 0))
        draw.text((i * tile + 3, tile + 2), caption, fill="black")
    return sheet


def panel(tiles: list[tuple[str, Image.Image]] | list[list[tuple[str, Image.Image]]], path: Path,
          tile: int = TILE) -> None:
    """Captioned tiles in one row, or in rows (a list of rows), saved (JPEG at quality 85 for a ``.jpg`` path)."""
    rows = [tile_row(row, tile) for row in (tiles if isinstance(tiles[0], list) else [tiles])]
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    for i, row in enumerate(rows):
        sheet.paste(row, (0, i * row.height))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, **({"quality": 85} if path.suffix == ".jpg" else {}))
    print("wrote", path.relative_to(ROOT))


def fit(name: str, runs: Path, vgg: str, *extra: str) -> Path:
    run = runs / name
    embed("fit", "--config", f"recipes/{name}.yaml", "--model.vgg_weights", vgg, "--data.crop", str(list(CROP)),
          "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false", *extra)
    return run / "images"


def inputs(images: str, second: str | None = None) -> list[str]:
    """``--data.images`` (and ``--data.second``) for CelebA photos by stem."""
    args = ["--data.images", str(PHOTOS / f"{images}.jpg")]
    return args + ["--data.second", str(PHOTOS / f"{second}.jpg")] if second else args


def with_overlay(image: Image.Image, overlay: Path) -> Image.Image:
    layer = Image.open(overlay).convert("RGBA").resize(image.size)
    return Image.alpha_composite(image.convert("RGBA"), layer)


def applications(runs: Path, vgg: str, out: Path) -> None:
    """The Image2StyleGAN++ applications that fit (Algorithms 3-6)."""
    images = fit("crossover", runs, vgg, *inputs("007454", "008799"))
    panel([("I1 (left half)", photo("007454")), ("I2 (the rest)", photo("008799")),
           ("embedding of I1", Image.open(images / "007454.Embed.png")),
           ("crossover W+", Image.open(images / "007454.Crossover.png")),
           ("+ noise (result)", Image.open(images / "007454.png"))], out / "crossover.png")

    images = fit("inpaint", runs, vgg, *inputs("001770"))
    hole = photo("001770").copy()
    ImageDraw.Draw(hole).rectangle((int(0.3 * 128), int(0.45 * 128), int(0.7 * 128) - 1, int(0.85 * 128) - 1),
                                   fill="black")
    panel([("photo", photo("001770")), ("with the hole", hole),
           *[(f"fill {k}", Image.open(images / f"001770_{k}.png")) for k in (1, 2, 3)]], out / "inpaint.png")

    images = fit("scribble", runs, vgg, *inputs("011219"))
    panel([("photo", photo("011219")), ("scribbled", with_overlay(photo("011219"), ROOT / "recipes" / "inputs" /
                                                                  "sunglasses.png")),
           ("embedding", Image.open(images / "011219.Embed.png")),
           ("first 4 rows", Image.open(images / "011219.Scribble.png")),
           ("+ noise (result)", Image.open(images / "011219.png"))], out / "scribble.png")

    images = fit("style_transfer", runs, vgg, *inputs("008799", "008075"))
    panel([("base", photo("008799")), ("style", photo("008075")),
           ("embedding", Image.open(images / "008799.Embed.png")),
           ("style, top 30%", Image.open(images / "008799.Style.png")),
           ("+ noise (result)", Image.open(images / "008799.png"))], out / "style_transfer.png")


def edits(runs: Path, vgg: str, out: Path) -> None:
    """Edits from latents files (Sec. 5, 7.6 and Image2StyleGAN's code arithmetic), on reconstructions."""
    photos = "[" + ", ".join(str(PHOTOS / f"{s}.jpg") for s in EDIT_PHOTOS) + "]"
    fit("reconstruct", runs, vgg, "--data.images", photos, "--model.steps", "{WI: 1000, Mkn: 500}")
    latents, edit = runs / "reconstruct" / "latents", runs / "edit"
    recon = runs / "reconstruct" / "images"
    a, b = latents / "007454.pt", latents / "008799.pt"
    embed("edit", "transfer", str(a), str(b), "box:0.2,0.55,0.8,0.95", "--out", str(edit))
    embed("edit", "activation", str(a), str(b), "--layer", "b16.conv0", "--op", "average", "--lam", "0.5",
          "--out", str(edit))
    embed("edit", "morph", str(a), str(b), "--frames", "5", "--out", str(edit))
    embed("edit", "morph", str(a), str(b), "--frames", "5", "--mask", "box:0.2,0.55,0.8,0.95", "--mask_blur",
          "2", "--out", str(edit))
    embed("edit", "mix", str(a), str(b), "--rows", "4", "--out", str(edit))
    embed("edit", "arithmetic", str(latents / "008229.pt"), str(latents / "001434.pt"), str(latents / "017827.pt"),
          "--strength", "0.25", "--out", str(edit))
    panel([("A", Image.open(recon / "007454.png")), ("B", Image.open(recon / "008799.png")),
           ("B's mouth, layer 4", Image.open(edit / "007454+008799.copy.b16.conv0.png")),
           ("average, b16.conv0", Image.open(edit / "007454+008799.average.b16.conv0.png")),
           ("rows 0-3 A, rest B", Image.open(edit / "007454+008799.rows4.png"))], out / "activations.png")
    strip = Image.open(edit / "007454~008799.png")
    masked = Image.open(edit / "007454~008799.masked.png")
    side = strip.height
    panel([(f"morph {i}/4", strip.crop((i * side, 0, (i + 1) * side, side))) for i in range(5)], out / "morph.png")
    panel([(f"mouth only {i}/4", masked.crop((i * side, 0, (i + 1) * side, side))) for i in range(5)],
          out / "morph_masked.png")
    panel([("person", Image.open(recon / "008229.png")), ("other, neutral", Image.open(recon / "001434.png")),
           ("other, smiling", Image.open(recon / "017827.png")),
           ("+ 0.25 x difference", Image.open(edit / "008229+017827-001434.png"))], out / "expression.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "gallery")
    parser.add_argument("--vgg-weights", default="imagenet")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    args = parser.parse_args()
    applications(args.runs, args.vgg_weights, args.out)
    edits(args.runs, args.vgg_weights, args.out)


if __name__ == "__main__":
    main()
