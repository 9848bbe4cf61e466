"""Several devices without gradient synchronisation: each process fits its own share of the images."""

from __future__ import annotations

import os
from typing import Any

from lightning.fabric.accelerators.cuda import num_cuda_devices
from lightning.fabric.plugins.environments import (
    LightningEnvironment,
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy

from embedding.fitting.run_guard import RunGuard


class IndependentDDPStrategy(DDPStrategy):
    """DDP processes (one per device; gloo on CPU) with no ``DistributedDataParallel`` wrapper.

    Every parameter of an embedding belongs to one image, and each image lives in exactly one
    process, so there is nothing to all-reduce: wrapping the module would only add a useless
    (and, with parameters that change per group, impossible) gradient synchronisation.
    The processes still start, meet at barriers and end together as in plain DDP; in between
    they do not move in step (one may fit more groups than another), so the per-batch collective
    that plain DDP runs to share a SIGTERM is switched off: each process handles its own signals,
    and mid-group checkpoints make any kill cheap.

    ``run_guard``, when set, is taken once the processes' group exists and before anything is
    written: process 0 locks the run folder and checks its recipe for the whole job, and every
    process learns its decision (:meth:`RunGuard.take_in_job`).
    """

    run_guard: RunGuard | None = None

    def setup_environment(self) -> None:
        super().setup_environment()
        if self.run_guard is not None:
            self.run_guard.take_in_job(self)

    def configure_ddp(self) -> None:
        """Keep the LightningModule unwrapped."""

    def setup(self, trainer: Trainer) -> None:
        super().setup(trainer)
        loop = trainer.fit_loop.epoch_loop
        if hasattr(loop, "_broadcast_sigterm_tensor"):
            loop._broadcast_sigterm_tensor = _no_collective


def _no_collective() -> None:
    """Stands in for the per-batch SIGTERM broadcast, which would deadlock processes out of step."""


def expected_processes(accelerator: Any, devices: Any, num_nodes: int | None) -> int:
    """How many processes the job will have: devices per node times nodes, or what torchrun or srun started.

    ``devices`` as Lightning takes it: a count, ``"auto"`` or -1 (every GPU when one is used, else 1),
    or a list of device indices (``"0,1"``, ``[0, 1]``).
    """
    launched = max(_integer(os.environ.get("WORLD_SIZE")),
                   _integer(os.environ.get("SLURM_NTASKS")) if SLURMEnvironment.detect() else 1)
    if isinstance(devices, str) and "," in devices:
        devices = [d for d in devices.split(",") if d.strip()]
    if isinstance(devices, list | tuple):
        per_node = len(devices)
    elif str(devices).strip() in ("auto", "-1"):
        gpus = num_cuda_devices() if str(accelerator) in ("auto", "gpu", "cuda", "None") else 0
        per_node = max(gpus, 1)
    else:
        per_node = _integer(devices)
    return max(launched, per_node * max(_integer(num_nodes), 1))


def _integer(value: Any) -> int:
    """``value`` as a whole number, 1 when it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


def is_first_process() -> bool:
    """Whether this process is the job's process 0, as its launcher's environment says before Lightning sets up.

    The environments are read in the order Lightning picks them: torchrun (``RANK``), SLURM's srun
    (``SLURM_PROCID``), LSF, MPI, else Lightning's own (``NODE_RANK`` and ``LOCAL_RANK``, which its
    launcher gives the processes it starts; unset means 0).
    """
    for environment in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if environment.detect():
            return environment().global_rank() == 0
    lightning = LightningEnvironment()
    return lightning.node_rank() == 0 and lightning.local_rank() == 0
