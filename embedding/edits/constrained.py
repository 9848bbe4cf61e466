"""Constrained editing: move a fitted code until its render meets a user's constraint, staying close and real.

The GAN-editing lecture's objective, over W+ from the fitted code ``w0`` (noise maps kept):

    w* = argmin_w  U(G(w)) + λ1·‖w − w0‖² − λ2·D(G(w))

``U`` is the mean squared difference between the render and the constraint image inside the
constraint's mask (colour strokes, say), plus, weighted by λk, the mean squared difference to
the fitted render outside it: strokes ask for a change where they are drawn and for nothing
elsewhere (λk = 0 is the lecture's U alone, which lets the whole face drift toward the strokes'
colours). ``‖w − w0‖²`` is the mean over W+ of the squared change, and ``D`` the generator's own
discriminator score (higher = more real).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from embedding.edits.operations import Code, render_codes
from embedding.generators import Discriminator, Generator


@dataclass
class ConstraintReport:
    """How the edit went: the constraint's error, realism and distances, before (the fit) and after."""

    constraint_before: float
    constraint_after: float
    realism_before: float
    realism_after: float
    code_distance: float
    outside_change: float

    def lines(self) -> list[str]:
        return [f"constraint error (MSE inside the mask): {self.constraint_before:.4f} → {self.constraint_after:.4f}",
                f"realism (discriminator score): {self.realism_before:.3f} → {self.realism_after:.3f}",
                f"distance to the fitted code (mean squared, W+): {self.code_distance:.4f}",
                f"change outside the mask (MSE against the fitted render): {self.outside_change:.4f}"]


def constrained_edit(generator: Generator, discriminator: Discriminator, code: Code, target: Tensor, mask: Tensor,
                     steps: int = 200, lr: float = 0.01, code_weight: float = 1.0,
                     realism_weight: float = 0.01, keep_weight: float = 1.0) -> tuple[Code, ConstraintReport]:
    """Optimise ``code``'s W+ for the objective above; returns the edited code and a report.

    ``target`` ``[3, R, R]`` and ``mask`` ``[1, R, R]`` (1 = constrained) are at the generator's
    resolution; ``code_weight`` is λ1, ``realism_weight`` λ2 and ``keep_weight`` λk.
    """
    if steps < 1 or lr <= 0:
        raise ValueError(f"a constrained edit needs steps ≥ 1 and lr > 0, got {steps} and {lr}")
    device = generator.w_avg.device
    code = code.to(device)
    target, mask = target.to(device)[None], mask.to(device)[None]
    w0 = code.w_plus.detach()
    w = w0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=lr)

    def render(ws: Tensor) -> Tensor:
        return render_codes(generator, [Code(ws, code.noise, code.name)])

    def constraint(image: Tensor) -> Tensor:
        return ((image - target).square() * mask).sum() / (mask.sum() * 3).clamp_min(1)

    def outside_change(image: Tensor, fitted: Tensor) -> Tensor:
        outside = 1 - mask
        return ((image - fitted).square() * outside).sum() / (outside.sum() * 3).clamp_min(1)

    with torch.no_grad():
        fitted = render(w0)
    with torch.enable_grad():  # also when called under no_grad, as the edit commands run
        for _ in range(steps):
            image = render(w)
            realism = discriminator(image).mean()
            loss = (constraint(image) + keep_weight * outside_change(image, fitted)
                    + code_weight * (w - w0).square().mean() - realism_weight * realism)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        after = render(w.detach())
        report = ConstraintReport(
            float(constraint(fitted)), float(constraint(after)), float(discriminator(fitted).mean()),
            float(discriminator(after).mean()), float((w - w0).square().mean()), float(outside_change(after, fitted)))
    return Code(w.detach().cpu(), [n.cpu() for n in code.noise], f"{code.name}.constrained"), report
