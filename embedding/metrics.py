"""How close a render is to its photo: PSNR, SSIM, LPIPS and the face measures, per image, and the run
folder's ``metrics.csv`` that records them (one row per image and measured step).

LPIPS is the field's perceptual distance: inversion papers and toolboxes report it with AlexNet at
256² (FFHQ's 1024² images are scored after resizing to 256²). :func:`lpips_metric` does the same:
larger images are resized down to 256² (bilinear, antialiased) first, smaller ones are scored at
their own size.
"""

from __future__ import annotations

import csv
import fcntl
import io
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from embedding.files import atomic_write
from embedding.fitting.run_folder import RunFolder
from embedding.lpips import LPIPS, MIN_SIZE, Net, load_lpips

COLUMNS = ["image", "phase", "step", "psnr", "ssim", "lpips", "psnr_masked", "ssim_masked", "identity",
           "landmark_error"]
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # the Gaussian window of Wang et al. (2004)
METRIC_SIZE = 256
_NETWORKS: dict[tuple[str, torch.device], LPIPS] = {}


def psnr(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image PSNR in dB for images in [-1, 1] (peak-to-peak 2); with a mask, over the masked pixels only."""
    weight = torch.ones_like(render[:, :1]) if mask is None else mask
    weight = weight.expand_as(render)
    mse = ((render - target).square() * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


def ssim(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image SSIM (Gaussian window 11, σ 1.5, reflected borders) for images in [-1, 1]; with a mask, its
    weighted mean."""
    index = ssim_map(render, target)
    if mask is None:
        return index.flatten(1).mean(1)
    weight = mask.expand_as(index)
    return (index * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-8)


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """The SSIM index at every pixel ``[B, C, H, W]``: local means, variances and covariance under the window."""
    channels, pad = a.shape[1], SSIM_WINDOW // 2
    x = torch.arange(SSIM_WINDOW, dtype=a.dtype, device=a.device) - pad
    g = torch.exp(-(x / SSIM_SIGMA).square() / 2)
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(channels, 1, -1, -1)
    stacked = F.pad(torch.cat([a, b, a * a, b * b, a * b]), (pad, pad, pad, pad), mode="reflect")
    mu_a, mu_b, aa, bb, ab = F.conv2d(stacked, window, groups=channels).split(a.shape[0])
    var_a, var_b = (aa - mu_a.square()).clamp_min(0), (bb - mu_b.square()).clamp_min(0)
    cov = ab - mu_a * mu_b
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2))


def lpips(a: Tensor, b: Tensor, net: Net = "alex") -> Tensor:
    """Per-image LPIPS v0.1 distance ``[N]`` between images ``[N, 3, H, W]`` in [-1, 1] (0: the same image).

    Differentiable (a loss term can use it); ``net`` is ``alex`` (the field's metric) or ``vgg``.
    The network is loaded once per device and kept.
    """
    key = (net, a.device)
    if key not in _NETWORKS:
        _NETWORKS[key] = load_lpips(net).to(a.device)
    return _NETWORKS[key](a.float(), b.float())


def at_metric_size(images: Tensor) -> Tensor:
    """``images`` resized (bilinear, antialiased) so that neither side exceeds 256 pixels; smaller ones unchanged."""
    height, width = images.shape[-2:]
    longest = max(height, width)
    if longest <= METRIC_SIZE:
        return images
    size = (round(height * METRIC_SIZE / longest), round(width * METRIC_SIZE / longest))
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def lpips_metric(render: Tensor, target: Tensor, net: Net = "alex") -> Tensor:
    """LPIPS as reported: both images at no more than 256² (:func:`at_metric_size`), without gradients."""
    with torch.no_grad():
        return lpips(at_metric_size(render), at_metric_size(target), net)


@torch.no_grad()
def measure(render: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, stems: list[str], phase: str,
            step: int, identity: bool = False, face_box: str | Sequence[float] = "auto",
            lpips: bool = True) -> list[dict]:
    """One ``metrics.csv`` row per image: ``render`` against ``target``, masked columns where ``mask`` has holes.

    Face columns (``identity``, ``landmark_error``) only with ``identity``, measured on the face
    (``face_box``, see :func:`embedding.faces.crop.resolve_face_box`); LPIPS unless ``lpips`` is false or the
    images are smaller than AlexNet's 31².
    """
    target, mask = target.float(), mask.float()
    render = render.float().clamp(-1, 1)
    values = {"psnr": psnr(render, target), "ssim": ssim(render, target)}
    if lpips and min(render.shape[-2:]) >= MIN_SIZE["alexnet"]:  # smaller images (a DGP input at 8²) go without
        values["lpips"] = lpips_metric(render, target)
    if identity:
        from embedding.faces.crop import resolve_face_box
        from embedding.faces.descriptor import identity_distance
        from embedding.faces.landmarks import landmark_error

        box = resolve_face_box(face_box, render.shape[-1])
        values["identity"] = identity_distance(render, target, box)
        values["landmark_error"] = landmark_error(render, target, box)
    masked = (mask < 1).flatten(1).any(1)
    if masked.any():
        values["psnr_masked"] = psnr(render, target, mask)
        values["ssim_masked"] = ssim(render, target, mask)
    rows = []
    for i, stem in enumerate(stems):
        row = {"image": stem, "phase": phase, "step": step}
        for key in COLUMNS[3:]:
            shown = key in values and (masked[i] or not key.endswith("_masked"))
            row[key] = f"{values[key][i].item():.4f}" if shown else ""
        rows.append(row)
    return rows


def read_metrics(folder: RunFolder) -> list[dict]:
    """The rows of the run folder's ``metrics.csv`` (none when there is no file)."""
    if not folder.metrics_csv.exists():
        return []
    with open(folder.metrics_csv, newline="") as f:
        return list(csv.DictReader(f))


def append_metrics(folder: RunFolder, rows: list[dict]) -> None:
    """Add ``rows`` to the run folder's ``metrics.csv`` (one writer at a time across processes)."""
    folder.root.mkdir(parents=True, exist_ok=True)
    with open(folder.metrics_csv, "a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if f.seek(0, io.SEEK_END) == 0:  # the size now that the lock is held, not when the file was opened
            writer.writeheader()
        writer.writerows(rows)
        f.flush()


def write_metrics(folder: RunFolder, rows: list[dict]) -> None:
    """Replace the run folder's ``metrics.csv`` by ``rows`` (rows of :data:`COLUMNS`), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(folder.metrics_csv, lambda f: f.write(buffer.getvalue().encode()))
