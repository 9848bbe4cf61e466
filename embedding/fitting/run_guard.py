"""What keeps a run folder truthful: one run at a time, and one recipe per folder.

A rerun in the same folder skips finished images and continues mid-group checkpoints, which is
only right when the recipe is the one that made them. So the folder records the fingerprint of
the settings that shape the results (``recipe.json``) and a run with other settings is refused
before it writes anything. Settings that only change which images run or how many at a time
(``data.images``, ``data.batch_size``, ``data.num_workers``, ``data.skip_done``) are left out:
images are fitted independently, so a folder can be filled in several calls.

A folder that holds no result yet (no finished image, no mid-group checkpoint), say after a first
try that failed at start-up, has nothing to protect: a run with other settings records its recipe
there instead, and says so.

A lock (``run.lock``, an ``flock`` held while the run lives) refuses a second run in the same
folder. The operating system drops it when its process dies, so a killed run leaves no stale lock;
a run that ends removes the file. Lock and recipe belong to the job, not to each of its processes
(:class:`RunGuard`): with several processes, on one machine or several, process 0 takes them and
the others learn its decision.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from embedding.files import atomic_write
from embedding.fitting.run_folder import RunFolder

if TYPE_CHECKING:
    from lightning.pytorch.strategies import Strategy

log = logging.getLogger(__name__)

RECIPE_FILE = "recipe.json"
LOCK_FILE = "run.lock"
# Data settings that do not change any image's result (see the module docstring).
NOT_IN_FINGERPRINT = frozenset({"images", "batch_size", "num_workers", "skip_done", "paste_back"})


class RunFolderError(RuntimeError):
    """The run folder cannot be used by this run; the message says why and what to do."""


def recipe_settings(method: str, model: dict[str, Any], data: dict[str, Any], precision: Any) -> dict[str, Any]:
    """The settings a run's results depend on: the fitting method and its arguments, the data section's
    result-shaping keys, precision."""
    shaping = {k: v for k, v in data.items() if k not in NOT_IN_FINGERPRINT}
    settings = {"method": method, "model": model, "data": shaping, "precision": precision}
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings in canonical JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def check_recipe(root: Path, settings: dict[str, Any]) -> bool:
    """Record ``settings`` in a new run folder, or check them against the recorded ones.

    Returns whether the folder already held results of this recipe. Raises ``RunFolderError``
    naming the changed settings when the folder holds results of another recipe; a folder of
    another recipe without results gets the new one.
    """
    path = root / RECIPE_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())
        compared = settings
        # the same settings, where a setting added since (left at None) counts as unchanged
        if recorded["fingerprint"] == fingerprint(compared) or not _changed(recorded["settings"], compared):
            return True
        changed = ", ".join(_changed(recorded["settings"], compared)) or "the recipe"
        if RunFolder(root).holds_results():
            raise RunFolderError(
                f"run folder {root} holds results of another recipe (changed: {changed}). Its finished images "
                f"would be skipped and its checkpoints continued under the new settings. Give this run another "
                f"folder with --trainer.default_root_dir (e.g. {root}-2), or delete {root} to start afresh.")
        log.warning("run folder %s holds no results yet: its recipe.json, of another recipe (changed: %s), is "
                    "replaced by this run's", root, changed)
    record = {"fingerprint": fingerprint(settings), "settings": settings}
    atomic_write(path, lambda f: f.write(json.dumps(record, indent=2).encode()))
    return False


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ between ``old`` and ``new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [name for key in sorted(set(old) | set(new))
                for name in _changed(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


class RunLock:
    """An exclusive lock on a run folder for the life of this process (or until ``release``).

    The lock file is removed on release, while still locked; a run that opened it just before
    finds it gone once it holds the lock, and takes a new one.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``RunFolderError`` naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+")  # noqa: SIM115 - held open while the run lives
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                f.close()
                raise RunFolderError(f"run folder {self.path.parent} is in use by {holder}; wait for that run to "
                                     "end, or use another folder (--trainer.default_root_dir)") from None
            if self._still_the_lock_file(f):
                break
            f.close()  # removed by the run that held it just before: lock the new file instead
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        self._file = f

    def _still_the_lock_file(self, f: IO[str]) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and unlock: a finished run leaves nothing behind."""
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class RunGuard:
    """The run folder's lock and recipe check, taken once for the whole job and held until ``release``."""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        self.root, self.settings = root, settings
        self._lock: RunLock | None = None

    def take(self) -> None:
        """Lock the folder and check its recipe (recording it in a new folder); ``RunFolderError`` when refused."""
        lock = RunLock(self.root)
        lock.acquire()
        try:
            resumed = check_recipe(self.root, self.settings)
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        if resumed:
            log.info("run folder %s holds results of this recipe: finished images are skipped and interrupted "
                     "groups resume from their checkpoints", self.root)

    def take_in_job(self, strategy: Strategy) -> None:
        """Process 0 of the job takes the guard and every process learns its decision (a collective call).

        The others never touch the lock; each raises ``RunFolderError`` when process 0 was refused
        (process 0 raises its own error), and all do when any process was given another recipe
        than process 0's.
        """
        rank = strategy.global_rank
        error: Exception | None = None
        if rank == 0:
            try:
                self.take()
            except Exception as e:  # raised below, once the others know
                error = e
        refusal, settings = strategy.broadcast((None if error is None else str(error), self.settings), src=0)
        if error is not None:
            raise error
        if refusal is not None:
            raise RunFolderError(f"process 0 of this job refused the run folder: {refusal}")
        changed = _changed(settings, self.settings)
        if changed:
            log.error("process %d was given another recipe than process 0 (changed: %s)", rank, ", ".join(changed))
        if not strategy.reduce_boolean_decision(not changed, all=True):
            raise RunFolderError(f"the processes of this job were given different recipes for run folder "
                                 f"{self.root} (see the log of each); give every process the same settings")

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
