"""Several devices without gradient synchronisation: each process fits its own share of the images."""

from __future__ import annotations

from lightning.pytorch.strategies import DDPStrategy


class IndependentDDPStrategy(DDPStrategy):
    """DDP processes (one per device; gloo on CPU) with no ``DistributedDataParallel`` wrapper.

    Every parameter of an embedding belongs to one image, and each image lives in exactly one
    process, so there is nothing to all-reduce: wrapping the module would only add a useless
    (and, with parameters that change per group, impossible) gradient synchronisation.
    The processes still start, meet at barriers and end together as in plain DDP.
    """

    def configure_ddp(self) -> None:
        """Keep the LightningModule unwrapped."""
