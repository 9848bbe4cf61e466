"""Time the face toolkit on this machine: alignment per photo, and the descriptor per image.

    python benchmarks/face_timing.py [photos ...] [--size 1024] [--threads N]

Alignment: detection + landmarks (``find_faces``) and the FFHQ crop (``align_face``) of each
photo's first face, after one warm-up photo. Descriptor: forward (no gradient) and forward +
backward with respect to the image, batches of 1 and 8 images of 256².
Default photos: the CelebA-HQ ones in ``../shared/data/stargan2_celebahq``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

from embedding.faces.align import align_face, find_faces
from embedding.faces.descriptor import face_descriptors

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTOS = sorted((ROOT.parent / "shared" / "data" / "stargan2_celebahq").glob("src/*/*.jpg"))


def seconds(work, repeats: int = 3) -> float:
    """Median wall time of ``work()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="*", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--size", type=int, default=1024, help="aligned output size")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = [Image.open(p).convert("RGB") for p in args.photos]
    find_faces(photos[0])  # loads the networks
    found, cropped = [], []
    for photo in photos:
        start = time.perf_counter()
        faces = find_faces(photo)
        found.append(time.perf_counter() - start)
        if faces:
            start = time.perf_counter()
            align_face(photo, faces[0].landmarks, args.size)
            cropped.append(time.perf_counter() - start)
    print(f"{len(photos)} photos ({photos[0].width}x{photos[0].height}), {torch.get_num_threads()} threads")
    print(f"detect + landmarks: {statistics.mean(found):.3f} s/photo; FFHQ crop at {args.size}²: "
          f"{statistics.mean(cropped):.3f} s/face")
    for batch in (1, 8):
        images = torch.rand(batch, 3, 256, 256) * 2 - 1
        forward = seconds(lambda images=images: face_descriptors(images).detach())

        def both(images=images) -> None:
            x = images.clone().requires_grad_(True)
            face_descriptors(x).sum().backward()

        print(f"descriptor, batch {batch}: forward {forward / batch * 1000:.1f} ms/image, "
              f"forward + backward {seconds(both) / batch * 1000:.1f} ms/image")


if __name__ == "__main__":
    main()
