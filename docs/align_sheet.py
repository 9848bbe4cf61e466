"""Make the alignment sheet of the docs: ``embed align`` on photos from ``../shared/data``.

    python docs/align_sheet.py                 # runs/figures/align_sheet.jpg
    python docs/align_sheet.py --out docs      # replaces the committed figure

Two mGANprior example photos as they are (tight portrait crops), and CelebA-HQ photos from
StarGAN v2 re-framed as in-the-wild shots: shrunk, tilted and placed off centre on a wider,
blurred background, one of them two people side by side. Writes ``<out>/align_sheet.jpg`` (``--out``,
default ``runs/figures``): one row per photo (the photo with detector boxes and landmarks, then its
aligned faces).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image, ImageFilter

from embedding.commands.align import main as align_main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MGANPRIOR = [DATA / "mganprior_examples" / "face" / name for name in ("3.png", "15.png")]
CELEBAHQ = DATA / "stargan2_celebahq"


def reframe(photo: Image.Image, size: tuple[int, int], scale: float, angle: float,
            at: tuple[float, float], canvas: Image.Image | None = None) -> Image.Image:
    """``photo`` shrunk by ``scale``, tilted by ``angle`` degrees and pasted centred at ``at``
    (fractions of ``size``) on ``canvas`` (default: the photo itself, blurred, as background)."""
    if canvas is None:
        canvas = photo.resize(size).filter(ImageFilter.GaussianBlur(24))
    small = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.LANCZOS)
    tilted = small.convert("RGBA").rotate(angle, Image.BICUBIC, expand=True)
    canvas.paste(tilted, (round(at[0] * size[0] - tilted.width / 2), round(at[1] * size[1] - tilted.height / 2)),
                 tilted)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "figures",
                        help="folder of the figure (default: runs/figures; docs replaces the committed one)")
    out = parser.parse_args().out
    hq = sorted(CELEBAHQ.glob("src/*/*.jpg"))
    open_rgb = [Image.open(p).convert("RGB") for p in hq[:2] + hq[5:7]]
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for path in MGANPRIOR:
            Image.open(path).convert("RGB").resize((512, 512), Image.LANCZOS).save(photos / f"portrait_{path.stem}.png")
        reframe(open_rgb[0], (900, 600), 0.45, 18, (0.3, 0.55)).save(photos / "tilted.jpg", quality=92)
        reframe(open_rgb[1], (600, 800), 0.3, -10, (0.65, 0.35)).save(photos / "small_off_centre.jpg", quality=92)
        pair = reframe(open_rgb[2], (1000, 560), 0.42, 6, (0.28, 0.5))
        reframe(open_rgb[3], (1000, 560), 0.38, -8, (0.74, 0.52), canvas=pair).save(photos / "two_people.jpg",
                                                                                    quality=92)
        sheet = Path(tmp) / "sheet.png"
        status = align_main([str(photos), "--out", str(Path(tmp) / "aligned"), "--size", "256",
                             "--preview", str(sheet)])
        if status:
            raise SystemExit(status)
        out.mkdir(parents=True, exist_ok=True)
        Image.open(sheet).save(out / "align_sheet.jpg", quality=88)


if __name__ == "__main__":
    main()
