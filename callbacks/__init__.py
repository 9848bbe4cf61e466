"""Lightning callbacks of the embedding runs: phases, metrics, TensorBoard images, results, progress."""

from .checkpoint import GroupCheckpoint
from .images import TensorBoardImages
from .metrics import EmbeddingMetrics
from .phases import PhaseSchedule
from .progress import EmbeddingProgressBar
from .writer import ResultWriter

__all__ = ["EmbeddingMetrics", "EmbeddingProgressBar", "GroupCheckpoint", "PhaseSchedule", "ResultWriter",
           "TensorBoardImages"]
