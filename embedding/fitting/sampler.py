"""The order in which a run's images are served: each group of images for all its steps in a row.

The datamodule's loader draws its batches from :class:`GroupRepeatSampler`; a group with a
mid-group checkpoint is served only for the steps it has left (:func:`resumed_groups`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from torch.utils.data import Sampler

from embedding.fitting.resume import ResumeStore


class GroupRepeatSampler(Sampler[list[int]]):
    """Batches of indices: group 0 (``[0 .. g-1]``) ``repeats`` times in a row, then group 1, and so on.

    A group is the set of images fitted together; every optimisation step of a group
    sees the same batch. The last group may be smaller. With ``world_size > 1`` this
    rank takes groups ``rank, rank + world_size, ...``, so ranks may differ by one group.
    ``done_steps`` maps a group index to the steps it already ran (a resumed group).
    """

    def __init__(
        self,
        num_items: int,
        group_size: int,
        repeats: int,
        rank: int = 0,
        world_size: int = 1,
        done_steps: dict[int, int] | None = None,
    ) -> None:
        if num_items < 0 or group_size < 1 or repeats < 1:
            raise ValueError(
                f"need num_items >= 0, group_size >= 1 and repeats >= 1: {num_items}, {group_size}, {repeats}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.num_items = num_items
        self.group_size = group_size
        self.repeats = repeats
        self.done_steps = done_steps or {}
        self.groups = list(range(rank, math.ceil(num_items / group_size), world_size))

    def __iter__(self) -> Iterator[list[int]]:
        for group in self.groups:
            indices = list(range(group * self.group_size, min((group + 1) * self.group_size, self.num_items)))
            for _ in range(self.repeats - self.done_steps.get(group, 0)):
                yield list(indices)

    def __len__(self) -> int:
        return sum(self.repeats - self.done_steps.get(group, 0) for group in self.groups)


def resumed_groups(store: ResumeStore, stems: list[str], group_size: int) -> dict[int, int]:
    """Group index → steps already done, for the groups of ``stems`` with a mid-group checkpoint."""
    done = {}
    for start in range(0, len(stems), group_size):
        state = store.read(stems[start : start + group_size])
        if state is not None:
            done[start // group_size] = state["group_step"]
    return done
