"""Make the gallery: every Image2StyleGAN++ application and code edit on real faces at 1024².

    embed fetch mobilestylegan-ffhq
    python docs/gallery.py                 # the schedule 2 CPU cores allow: W+ phases 60 steps, noise 30
    python docs/gallery.py --steps 1000 -- --trainer.accelerator gpu --trainer.precision bf16-mixed
    python docs/gallery.py --out docs/gallery   # replaces the committed figures

The photos (CelebA-HQ, and a neutral/smiling CelebA pair of one person, from ``../shared/data``)
are aligned by ``embed align`` at 1024², then every recipe runs with ``embed fit --model.generator
mobilestylegan-ffhq`` and the shipped ImageNet VGG-16, and the edits with ``embed edit`` on the
reconstructions. ``--steps`` is the length of each W+ phase; noise phases take half. Runs land in
``runs/gallery/<recipe>`` and a rerun continues killed runs and reuses finished ones. Each figure is
``<out>/<application>.jpg`` (``--out``, default ``runs/figures/gallery``, outside the tracked tree;
``--out docs/gallery`` for the committed ones): the inputs, then the renders the run wrote. Arguments
after ``--`` go to every ``embed fit``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

from embedding.fitting.run_folder import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # not in the repository
PHOTOS = {stem: DATA / "stargan2_celebahq" / folder / f"{stem}.jpg" for folder, stem in (
    ("src/female", "051340"), ("src/female", "069067"), ("src/male", "005735"), ("src/male", "196930"),
    ("ref/female", "058881"), ("ref/female", "015248"))} | {
    stem: DATA / "celeba_6k" / "img" / f"{stem}.jpg" for stem in ("001434", "017827")}  # one person: neutral, smiling
RECONSTRUCTED = ("051340", "015248", "196930", "001434", "017827")  # A, B; the person; the pair (expression)
GENERATOR = "mobilestylegan-ffhq"
TILE = 256
# Regions in the FFHQ-aligned frame, as fractions [left, top, right, bottom] of the image.
HOLE = (0.32, 0.50, 0.68, 0.80)        # nose and mouth
MOUTH = (0.30, 0.63, 0.70, 0.82)
HAIR = (0.0, 0.0, 1.0, 0.25)           # above the forehead
BLUR = "16"  # Mblur in pixels at 1024², as the recipes' 2 pixels (made for 64² and 256²) would leave a seam
EYES = ((0.37, 0.465), (0.63, 0.465))  # centres of the eyes


def embed(*args: str) -> None:
    """Run ``embed`` with this interpreter and the repository on the path, failing loudly; print its time."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    print("$ embed", " ".join(args), flush=True)
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "embedding.commands", *args], cwd=ROOT, check=True,
                   env={**os.environ, "PYTHONPATH": path})
    print(f"  ({time.monotonic() - start:.0f} s)", flush=True)


def tile_row(tiles: list[tuple[str, Image.Image]], tile: int) -> Image.Image:
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
    print("wrote", path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def phase_psnr(run: Path, stem: str, phase: str) -> float:
    """The last PSNR row of ``phase`` for ``stem`` in a run's metrics.csv."""
    with open(RunFolder(run).metrics_csv, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["image"] == stem and r["phase"] == phase]
    return float(rows[-1]["psnr"])


class Gallery:
    """The runs of one gallery: aligned photos, ``embed fit`` per recipe, figures from what they wrote."""

    def __init__(self, runs: Path, steps: int, extra: list[str], out: Path) -> None:
        self.runs, self.steps, self.extra, self.out = runs, steps, extra, out
        self.aligned = runs / "aligned"

    def align(self) -> None:
        """``embed align`` every photo at 1024² once (kept between runs)."""
        missing = [stem for stem in PHOTOS if not (self.aligned / f"{stem}.png").is_file()]
        if missing:
            embed("align", *[str(PHOTOS[s]) for s in missing], "--size", "1024", "--out", str(self.aligned),
                  "--max-faces", "1")

    def photo(self, stem: str) -> Image.Image:
        return Image.open(self.aligned / f"{stem}.png").convert("RGB")

    def fit(self, recipe: str, phases: dict[str, str], *args: str, name: str | None = None,
            config: Path | None = None) -> Path:
        """``embed fit`` of a recipe (or the file ``config``) with MobileStyleGAN into ``runs/<name or recipe>``;
        ``phases`` names each phase ``w``, ``noise`` or ``skip`` (its steps)."""
        length = {"w": self.steps, "noise": self.steps // 2, "skip": 0}
        steps = {phase: length[kind] for phase, kind in phases.items()}
        run = self.runs / (name or recipe)
        embed("fit", "--config", str(config or f"recipes/{recipe}.yaml"), "--model.generator", GENERATOR,
              "--model.steps", "{" + ", ".join(f"{k}: {v}" for k, v in steps.items()) + "}",
              "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar", "false", *args, *self.extra)
        return run / "images"

    def images(self, *stems: str) -> list[str]:
        return [str(self.aligned / f"{s}.png") for s in stems]

    def crossover(self) -> None:
        i1, i2 = self.images("051340", "069067")
        images = self.fit("crossover", {"Embed": "w", "Crossover": "w", "Mkn": "noise"},
                          "--data.images", i1, "--data.second", i2, "--data.blur_sigma", BLUR)
        panel([("I1 (left half)", self.photo("051340")), ("I2 (the rest)", self.photo("069067")),
               ("embedding of I1", Image.open(images / "051340.Embed.png")),
               ("crossover W+", Image.open(images / "051340.Crossover.png")),
               ("+ noise (result)", Image.open(images / "051340.png"))], self.out / "crossover.jpg")

    def inpaint(self) -> None:
        recipe = yaml.safe_load((ROOT / "recipes" / "inpaint.yaml").read_text())
        for phase in recipe["model"]["phases"]:
            if "mask_dilate" in phase:  # Mblur+ in pixels, sized for 64² to 256²: 16 times as wide at 1024²
                phase.update(mask_dilate=32, mask_blur=24)
        config = self.runs / "inpaint_1024.yaml"
        config.write_text(yaml.safe_dump(recipe, sort_keys=False))
        images = self.fit("inpaint", {"WI": "w", "Mkn": "noise"}, "--data.images", *self.images("005735"),
                          "--data.mask.box", str(list(HOLE)), config=config)
        hole = self.photo("005735")
        ImageDraw.Draw(hole).rectangle(scaled(HOLE, hole.size), fill="black")
        panel([("photo", self.photo("005735")), ("with the hole", hole),
               *[(f"fill {k}", Image.open(images / f"005735_{k}.png")) for k in (1, 2, 3)]],
              self.out / "inpaint.jpg")

    def scribble(self) -> None:
        strokes = self.runs / "sunglasses.png"
        sunglasses(self.photo("196930").size).save(strokes)
        images = self.fit("scribble", {"Embed": "w", "Scribble": "w", "Mkn": "noise"},
                          "--data.images", *self.images("196930"), "--data.scribble", str(strokes))
        scribbled = Image.alpha_composite(self.photo("196930").convert("RGBA"), Image.open(strokes))
        panel([("photo", self.photo("196930")), ("scribbled", scribbled),
               ("embedding", Image.open(images / "196930.Embed.png")),
               ("first 4 rows", Image.open(images / "196930.Scribble.png")),
               ("+ noise (result)", Image.open(images / "196930.png"))], self.out / "scribble.jpg")

    def style_transfer(self) -> None:
        base, style = self.images("069067", "058881")
        images = self.fit("style_transfer", {"Embed": "w", "Style": "w", "Mkn": "noise"},
                          "--data.images", base, "--data.second", style,
                          "--data.mask.box", str(list(HAIR)), "--data.blur_sigma", BLUR)
        panel([("base", self.photo("069067")), ("style", self.photo("058881")),
               ("embedding", Image.open(images / "069067.Embed.png")),
               ("style, top 25%", Image.open(images / "069067.Style.png")),
               ("+ noise (result)", Image.open(images / "069067.png"))], self.out / "style_transfer.jpg")

    def reconstruction(self) -> None:
        """Algorithm 2 on the photos the edits use: each photo, its W+ render, then W+ & noise."""
        self.fit("reconstruct", {"WI": "w", "Mkn": "noise"}, "--data.images", str(self.images(*RECONSTRUCTED)))
        run = self.runs / "reconstruct"
        panel([[("photo", self.photo(stem)),
                (f"W+: {phase_psnr(run, stem, 'WI'):.1f} dB", Image.open(run / "images" / f"{stem}.WI.png")),
                (f"W+ & noise: {phase_psnr(run, stem, 'Mkn'):.1f} dB", Image.open(run / "images" / f"{stem}.png"))]
               for stem in RECONSTRUCTED],
              self.out / "reconstruction.jpg", TILE * 3 // 4)

    def edits(self, strength: float) -> None:
        """Edits of reconstructions (Image2StyleGAN++ Sec. 5 and 7.6, Image2StyleGAN's code arithmetic)."""
        self.reconstruction()
        latents, recon = self.runs / "reconstruct" / "latents", self.runs / "reconstruct" / "images"
        edit = self.runs / "edits"
        a, b = str(latents / "051340.pt"), str(latents / "015248.pt")
        mouth = "box:" + ",".join(str(v) for v in MOUTH)
        embed("edit", "transfer", a, b, mouth, "--mask_blur", "16", "--out", str(edit))
        embed("edit", "activation", a, b, "--layer", "layers.1.conv1", "--op", "average", "--lam", "0.5",
              "--out", str(edit))
        # Fitted noise maps hold each photo's detail in place, so mixing rows mixes them too: mix W+ codes.
        self.fit("reconstruct", {"WI": "w", "Mkn": "skip"}, "--data.images", str(self.images("051340", "015248")),
                 name="reconstruct_wplus")
        w_only = self.runs / "reconstruct_wplus" / "latents"
        embed("edit", "mix", str(w_only / "051340.pt"), str(w_only / "015248.pt"), "--rows", "10", "--out", str(edit))
        embed("edit", "morph", a, b, "--frames", "5", "--out", str(edit))
        embed("edit", "morph", a, b, "--frames", "5", "--mask", mouth, "--mask_blur", "16", "--out", str(edit))
        embed("edit", "arithmetic", str(latents / "196930.pt"), str(latents / "001434.pt"), str(latents / "017827.pt"),
              "--strength", str(strength), "--out", str(edit))
        panel([("A", Image.open(recon / "051340.png")), ("B", Image.open(recon / "015248.png")),
               ("B's mouth, layer 4 (16x16)", Image.open(edit / "051340+015248.copy.layers.1.conv1.png")),
               ("average, layers.1.conv1", Image.open(edit / "051340+015248.average.layers.1.conv1.png")),
               ("rows 0-9 A, rest B (W+ codes)", Image.open(edit / "051340+015248.rows10.png"))],
              self.out / "activations.jpg")
        strip, masked = Image.open(edit / "051340~015248.png"), Image.open(edit / "051340~015248.masked.png")
        side = strip.height
        panel([[(f"morph {i}/4", strip.crop((i * side, 0, (i + 1) * side, side))) for i in range(5)],
               [(f"mouth only {i}/4", masked.crop((i * side, 0, (i + 1) * side, side))) for i in range(5)]],
              self.out / "morph.jpg")
        panel([("person", Image.open(recon / "196930.png")), ("other, neutral", Image.open(recon / "001434.png")),
               ("other, smiling", Image.open(recon / "017827.png")),
               (f"+ {strength:g} x difference", Image.open(edit / "196930+017827-001434.png"))],
              self.out / "expression.jpg")


def scaled(box: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A fractional box in pixels of an image of ``size``."""
    return (round(box[0] * size[0]), round(box[1] * size[1]), round(box[2] * size[0]) - 1, round(box[3] * size[1]) - 1)


def sunglasses(size: tuple[int, int]) -> Image.Image:
    """Strokes of dark glasses over the eyes of an FFHQ-aligned face (alpha marks the strokes)."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = size
    for x, y in EYES:
        draw.ellipse((round((x - 0.1) * w), round((y - 0.055) * h), round((x + 0.1) * w), round((y + 0.055) * h)),
                     fill=(10, 10, 12, 255))
    draw.line((round(0.45 * w), round(0.455 * h), round(0.55 * w), round(0.455 * h)), fill=(10, 10, 12, 255),
              width=max(1, w // 100))
    return layer


FIGURES = ("reconstruction", "edits", "crossover", "inpaint", "scribble", "style_transfer")  # edits include the first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "gallery")
    parser.add_argument("--steps", type=int, default=60, help="steps of each W+ phase; noise phases take half")
    parser.add_argument("--strength", type=float, default=0.5, help="expression transfer: the share of the difference")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "figures" / "gallery",
                        help="folder of the figures (default: runs/figures/gallery; docs/gallery replaces the "
                             "committed ones)")
    parser.add_argument("--only", nargs="+", choices=FIGURES, help="make only these figures")
    args, extra = parser.parse_known_args()
    gallery = Gallery(args.runs, args.steps, [a for a in extra if a != "--"], args.out)
    gallery.align()
    for name in args.only or FIGURES[1:]:
        start = time.monotonic()
        getattr(gallery, name)(*([args.strength] if name == "edits" else []))
        print(f"{name}: {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
