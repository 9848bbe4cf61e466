"""The one error type every checkpoint reader raises, naming the file."""

from __future__ import annotations

import re
from pathlib import Path


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, hostile, or of an unsupported architecture."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def weights_only_error(path: str | Path, error: Exception) -> CheckpointError:
    """Explain a failed weights-only ``torch.load``: a refused global (hostile or foreign file) or corruption."""
    refused = re.search(r"GLOBAL (\S+)", str(error))
    if refused:
        return CheckpointError(path, f"refused to load: it references {refused.group(1)}, which a weights-only "
                                     "checkpoint never needs (the file may be hostile)")
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return CheckpointError(path, f"not a readable checkpoint (truncated or corrupt?): {first_line}")
