"""A group's schedule: the phases (or stages) it goes through, in order, each with its own step count.

Every method's entries have a ``name``, ``steps`` and ``make_optimizer(params)``: the embedding's
phases, DGP's stages, PTI's pivot and tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


def with_steps(phases: list[Any], steps: dict[str, int]) -> list[Any]:
    """Copies of ``phases`` with the step counts named in ``steps`` replaced."""
    unknown = set(steps) - {p.name for p in phases}
    if unknown:
        raise ValueError(f"steps given for unknown phase(s) {sorted(unknown)}; phases are {[p.name for p in phases]}")
    return [replace(p, steps=steps.get(p.name, p.steps)) for p in phases]


@dataclass
class Schedule:
    """The phases of one group, with the step at which each begins."""

    phases: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [p.name for p in self.phases]
        if not self.phases:
            raise ValueError("at least one phase is needed")
        if len(set(names)) != len(names):
            raise ValueError(f"phase names must be unique (they name the per-phase renders): {names}")
        if self.total_steps == 0:
            counts = ", ".join(f"{p.name}: 0" for p in self.phases)
            raise ValueError(f"no step to run: every phase has 0 steps ({counts}); give at least one of them "
                             f"steps > 0 (model.steps, e.g. --model.steps \"{{{self.phases[0].name}: 100}}\")")

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)

    def phase_at(self, step: int) -> Any:
        """The phase that runs optimisation step ``step`` (0-based within a group)."""
        for phase in self.phases:
            if step < phase.steps:
                return phase
            step -= phase.steps
        raise IndexError(f"step {step} is past the last phase")

    def ended_at(self, steps_done: int) -> Any | None:
        """The phase that finishes exactly when ``steps_done`` steps of the group have run, if any."""
        end = 0
        for phase in self.phases:
            end += phase.steps
            if phase.steps > 0 and end == steps_done:
                return phase
        return None
