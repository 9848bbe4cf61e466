"""Parity of the MobileStyleGAN port with OpenVINO's runtime on random-face's own IR files, and the test fixtures.

OpenVINO (installed into a scratch virtual environment, never into the project's) maps a few
seeds' z and renders their w, and renders one W+ whose 23 rows all differ, through a copy of the
IR graph whose modulations each read their own input (:mod:`openvino_reference`). The port does
the same; the script prints max and mean |Δ| and writes the reference outputs, reduced, to
``--out`` (``golden.pt``, used by ``tests/test_mobilestylegan.py`` without OpenVINO):

    python benchmarks/mobilestylegan_golden.py --venv runs/openvino-venv --out tests/fixtures/mobilestylegan

The weights come from the cache (``embed fetch mobilestylegan-ffhq`` is run first if needed).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from openvino_reference import openvino_python, run_reference

from embedding.checkpoints import load_generator, mobilestylegan
from embedding.files import atomic_write

CROP = (slice(464, 496), slice(368, 400))   # 32×32 around the left eye of an aligned face
REDUCED = 32                                # the whole image, area-averaged to 32²


def reduced(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the fixture keeps of ``[N, 3, 1024, 1024]`` images: a 32² average, a full-resolution crop, statistics."""
    flat = images.flatten(2)
    return {"small": F.adaptive_avg_pool2d(images, REDUCED), "crop": images[:, :, CROP[0], CROP[1]].clone(),
            "mean": flat.mean(2), "std": flat.std(2), "min": flat.amin(2), "max": flat.amax(2)}


def inputs(seeds: list[int], rows_seed: int, generator) -> dict[str, torch.Tensor]:
    """z per seed, and a W+ whose rows are the mapped codes of 23 other latents (ψ = 0.7)."""
    z = torch.stack([torch.randn(512, generator=torch.Generator().manual_seed(s)) for s in seeds])
    row_z = torch.randn(generator.num_ws, 512, generator=torch.Generator().manual_seed(rows_seed))
    with torch.no_grad():
        ws = generator.mapping(row_z, truncation_psi=0.7)[:, 0][None].clone()
    return {"z": z, "ws": ws}


def report(name: str, ours: torch.Tensor, reference: torch.Tensor) -> None:
    diff = (ours - reference).abs()
    print(f"{name:<28} max |Δ| {diff.max():.2e}   mean |Δ| {diff.mean():.2e}   "
          f"(reference range {reference.min():.3f} … {reference.max():.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("runs/openvino-venv"),
                        help="scratch virtual environment for OpenVINO (made if missing)")
    parser.add_argument("--out", type=Path, help="write the fixture file golden.pt here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows-seed", type=int, default=100)
    args = parser.parse_args()
    try:
        g = load_generator(mobilestylegan.NAME)
    except FileNotFoundError:
        mobilestylegan.fetch()
        g = load_generator(mobilestylegan.NAME)
    given = inputs(args.seeds, args.rows_seed, g)
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", z=given["z"].numpy(), ws=given["ws"].numpy())
        run_reference(openvino_python(args.venv), "render", mobilestylegan.folder(), Path(tmp) / "in.npz",
                      Path(tmp) / "out.npz")
        with np.load(Path(tmp) / "out.npz") as out:
            ref = {k: torch.from_numpy(out[k]) for k in out.files}
    with torch.no_grad():
        w = g.mapping(given["z"])
        images = torch.cat([g.synthesis(wi[None, None].expand(1, g.num_ws, -1)) for wi in ref["w"]])
        row_images = g.synthesis(given["ws"])
    report("mapping (w)", w[:, 0], ref["w"])
    report("synthesis (one style)", images, ref["images"])
    report("synthesis (23 distinct rows)", row_images, ref["row_images"])
    for name, image in (("synthesis (one style)", images), ("synthesis (23 distinct rows)", row_images)):
        print(f"  {name}: values beyond [-1, 1]: {(image.abs() > 1).float().mean():.2%} of pixels")
    if args.out:
        golden = {"seeds": torch.tensor(args.seeds), "z": given["z"], "w": ref["w"], "ws": given["ws"],
                  "images": reduced(ref["images"]), "row_images": reduced(ref["row_images"])}
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out / "golden.pt", lambda f: torch.save(golden, f))
        print(f"wrote {args.out / 'golden.pt'}")


if __name__ == "__main__":
    main()
