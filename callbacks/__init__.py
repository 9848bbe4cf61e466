"""Lightning callbacks of the fitting runs: checkpoints, metrics, TensorBoard images, results, progress.

They read a :class:`~embedding.fitting.method.FittingMethod` only through its ``progress``, ``view``,
``result``, ``failed`` and ``group_state``; the method runs its own groups and phases.
"""

from .checkpoint import GroupCheckpoint
from .images import TensorBoardImages
from .metrics import EmbeddingMetrics
from .progress import EmbeddingProgressBar
from .writer import ResultWriter

__all__ = ["EmbeddingMetrics", "EmbeddingProgressBar", "GroupCheckpoint", "ResultWriter", "TensorBoardImages"]
