"""Several devices without gradient synchronisation: each process fits its own share of the images."""

from __future__ import annotations

from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy


class IndependentDDPStrategy(DDPStrategy):
    """DDP processes (one per device; gloo on CPU) with no ``DistributedDataParallel`` wrapper.

    Every parameter of an embedding belongs to one image, and each image lives in exactly one
    process, so there is nothing to all-reduce: wrapping the module would only add a useless
    (and, with parameters that change per group, impossible) gradient synchronisation.
    The processes still start, meet at barriers and end together as in plain DDP; in between
    they do not move in step (one may fit more groups than another), so the per-batch collective
    that plain DDP runs to share a SIGTERM is switched off: each process handles its own signals,
    and mid-group checkpoints make any kill cheap.
    """

    def configure_ddp(self) -> None:
        """Keep the LightningModule unwrapped."""

    def setup(self, trainer: Trainer) -> None:
        super().setup(trainer)
        loop = trainer.fit_loop.epoch_loop
        if hasattr(loop, "_broadcast_sigterm_tensor"):
            loop._broadcast_sigterm_tensor = _no_collective


def _no_collective() -> None:
    """Stands in for the per-batch SIGTERM broadcast, which would deadlock processes out of step."""
