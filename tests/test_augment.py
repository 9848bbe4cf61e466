"""DiffAugment: colour, translation and cutout applied to the images the discriminator sees."""

from __future__ import annotations

import pytest
import torch

from embedding.augment import POLICIES, diff_augment

R = 16


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("policy", [[name] for name in POLICIES] + [list(POLICIES)])
def test_every_transform_keeps_shape_and_dtype(policy: list[str], dtype: torch.dtype) -> None:
    x = torch.rand(3, 3, R, R, dtype=dtype) * 2 - 1
    y = diff_augment(x, policy)
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.isfinite(y).all()


def test_translation_moves_content_by_at_most_an_eighth() -> None:
    x = torch.zeros(64, 3, R, R)
    x[:, :, R // 2, R // 2] = 1
    y = diff_augment(x, ["translation"])
    shifts = set()
    for image in y:
        bright = image[0].nonzero()
        assert len(bright) == 1  # the pixel moved, it was neither blurred nor duplicated
        (row, col), = bright.tolist()
        assert abs(row - R // 2) <= R // 8 and abs(col - R // 2) <= R // 8
        assert torch.equal(image[:, row, col], torch.ones(3))
        shifts.add((row, col))
    assert len(shifts) > 1  # each image gets its own random shift


def test_translation_fills_with_zeros() -> None:
    y = diff_augment(torch.ones(64, 3, R, R), ["translation"])
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    for image in y[:, 0]:
        rows, cols = image.any(dim=1).sum(), image.any(dim=0).sum()
        # What stays is one rectangle, as large as the shift allows.
        assert image.sum() == rows * cols
        assert rows >= R - R // 8 and cols >= R - R // 8
    assert (y == 0).any()


def test_cutout_zeros_a_square_of_half_the_side() -> None:
    y = diff_augment(torch.ones(256, 3, R, R), ["cutout"])
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    inside = 0
    for image in y:
        holes = image[0] == 0
        assert torch.equal(holes, image[1] == 0)  # the same hole in every channel
        rows, cols = holes.any(dim=1).nonzero().flatten(), holes.any(dim=0).nonzero().flatten()
        assert len(rows) <= R // 2 and len(cols) <= R // 2
        assert holes.sum() == len(rows) * len(cols)  # one rectangle
        touches_border = rows[0] == 0 or cols[0] == 0 or rows[-1] == R - 1 or cols[-1] == R - 1
        if not touches_border:
            assert holes.sum() == (R // 2) ** 2
            inside += 1
    assert inside > 0


def test_colour_changes_values_and_passes_gradients() -> None:
    x = (torch.rand(4, 3, R, R) * 2 - 1).requires_grad_(True)
    y = diff_augment(x, ["color"])
    assert not torch.allclose(y, x)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_all_transforms_pass_gradients() -> None:
    x = torch.rand(4, 3, R, R).requires_grad_(True)
    diff_augment(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="flip"):
        diff_augment(torch.zeros(1, 3, R, R), ["color", "flip"])


def test_empty_policy_returns_the_input() -> None:
    x = torch.rand(2, 3, R, R)
    assert torch.equal(diff_augment(x, []), x)
