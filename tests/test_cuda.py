"""On a CUDA device, the renders and fits of the CPU (skipped without one; benchmarks/gpu_check.py runs them)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.robust_run import small_fit
from tests.test_robustness import copy_photos, latents

pytestmark = pytest.mark.cuda

ON_CUDA = {"accelerator": "gpu", "devices": 1}


@pytest.fixture
def full_fp32() -> Iterator[None]:
    """fp32 convolutions and matrix products without TF32, so that CUDA and CPU differ by rounding alone."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def psnr(root: Path) -> dict[tuple[str, str], float]:
    """PSNR at each phase's end, by (image, phase), from the run folder's ``metrics.csv``."""
    with open(root / "metrics.csv", newline="") as f:
        return {(row["image"], row["phase"]): float(row["psnr"]) for row in csv.DictReader(f)}


def test_the_generator_renders_and_differentiates_on_cuda_as_on_cpu(tiny_generator, full_fp32):
    seeded = torch.Generator().manual_seed(0)
    ws = tiny_generator.mapping(torch.randn(4, tiny_generator.z_dim, generator=seeded), None)
    noise = tiny_generator.synthesis.random_noise(4, seeded)
    weights = torch.randn(4, 3, 32, 32, generator=seeded)

    def render(device: str) -> tuple[torch.Tensor, torch.Tensor]:
        synthesis = tiny_generator.synthesis.to(device)
        w = ws.detach().to(device).requires_grad_()
        image = synthesis(w, [n.to(device) for n in noise])
        (image * weights.to(device)).sum().backward()
        return image.detach().cpu(), w.grad.cpu()

    image, grad = render("cpu")
    image_cuda, grad_cuda = render("cuda")
    assert (image_cuda - image).abs().max() < 1e-4
    assert (grad_cuda - grad).abs().max() < 1e-4 * grad.abs().max()


def test_a_fit_on_cuda_gives_the_results_of_a_cpu_fit(tiny_generator, tiny_generator_file, tmp_path, full_fp32):
    photos = copy_photos(tmp_path / "photos")
    cpu, cuda = tmp_path / "cpu", tmp_path / "cuda"
    small_fit(tiny_generator_file, photos, cpu, data={"batch_size": 3})
    small_fit(tiny_generator_file, photos, cuda, data={"batch_size": 3}, trainer=ON_CUDA)
    on_cpu, on_cuda = latents(cpu), latents(cuda)
    assert sorted(on_cuda) == sorted(on_cpu) == ["000002", "000058", "000086"]
    start = tiny_generator.w_avg  # w_init: mean
    for stem, fit in on_cpu.items():
        # Adam normalises each step: a gradient near zero that rounds to the other sign moves its value the
        # other way, so single values may differ by a few steps' lr; the fit as a whole is the same
        moved, moved_cuda = (fit["w_plus"] - start).flatten(), (on_cuda[stem]["w_plus"] - start).flatten()
        assert torch.nn.functional.cosine_similarity(moved, moved_cuda, dim=0) > 0.99, stem
    for key, value in psnr(cpu).items():
        assert abs(psnr(cuda)[key] - value) < 0.1, key


def test_a_bf16_fit_on_cuda_writes_finite_results_close_to_fp32(tiny_generator_file, tmp_path):
    photos = copy_photos(tmp_path / "photos")
    cpu, cuda = tmp_path / "cpu", tmp_path / "bf16"
    small_fit(tiny_generator_file, photos, cpu, data={"batch_size": 3})
    small_fit(tiny_generator_file, photos, cuda, data={"batch_size": 3}, trainer={**ON_CUDA, "precision": "bf16-mixed"})
    fits = latents(cuda)
    assert sorted(fits) == ["000002", "000058", "000086"]
    for fit in fits.values():
        assert fit["w_plus"].dtype == torch.float32 and torch.isfinite(fit["w_plus"]).all()
        assert all(torch.isfinite(n).all() for n in fit["noise"])
    for key, value in psnr(cpu).items():
        assert abs(psnr(cuda)[key] - value) < 0.5, key
