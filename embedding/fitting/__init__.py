"""The fitting core: how one group of images is fitted, whatever the method.

1. The datamodule serves each group of ``batch_size`` images once per step
   (:class:`~embedding.fitting.sampler.GroupRepeatSampler`), fewer times for a group whose
   checkpoint has already done some (:class:`~embedding.fitting.resume.ResumeStore`).
2. On the group's first batch the method starts it (``init_group``: every image's own
   parameters) or restores its checkpoint; at each phase's first step it enters the phase
   (``enter_phase``) with a fresh optimiser (:mod:`embedding.fitting.method`).
3. Each step renders the group, takes every image's own loss, backpropagates through the images
   still fitting and steps the optimiser.
4. Callbacks checkpoint the group on a timer or a signal, measure it at phase ends, and once the
   group is done write each image's ``result`` (:func:`~embedding.fitting.results.write_result`)
   into the run folder (:mod:`embedding.fitting.run_folder`), whose lock and recipe check
   (:mod:`embedding.fitting.run_guard`) keep it truthful.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FitResult", "FittingMethod", "GroupView", "Progress"]


def __getattr__(name: str) -> Any:
    """The method's classes, imported on first use: the run folder's modules need no Lightning."""
    if name in __all__:
        return getattr(importlib.import_module("embedding.fitting.method"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
