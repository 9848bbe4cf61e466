"""Running ``embed fit`` as a separate process: a fresh interpreter, or a fork of the test process.

A fresh interpreter (``python -m embedding.commands``) is the real command. A fork runs the same entry
point, ``embedding.commands.main``, without paying for the imports again, which matters when a test
starts, kills and restarts a run several times.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from embedding.commands.fit import Run, fit

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "reconstruct.yaml"


def fit_args(generator: Path | str, images: Path | str, root: Path | str, *extra: str,
             steps: str = "{WI: 6, Mkn: 4}") -> list[str]:
    """``embed fit`` arguments for a small CPU run of the reconstruction recipe."""
    return ["fit", "--config", str(RECIPE), "--model.generator", str(generator), "--model.vgg_weights", "random",
            "--data.images", str(images), "--trainer.default_root_dir", str(root), "--model.steps", steps,
            "--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", *extra]


def small_fit(generator: Path | str, images: Path | str | list, root: Path | str, steps: dict | None = None,
              **sections: dict) -> Run:
    """The same small CPU run as :func:`fit_args`, in this process through the public API (``embedding.fit``)."""
    model = {"generator": str(generator), "vgg_weights": "random", "steps": steps or {"WI": 6, "Mkn": 4},
             **sections.pop("model", {})}
    trainer = {"accelerator": "cpu", "enable_progress_bar": False, **sections.pop("trainer", {})}
    return fit(RECIPE, images, root, model=model, trainer=trainer, **sections)


def cli_env() -> dict[str, str]:
    """The environment of a command-line run: one thread per process, the project importable."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": path}


def start_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m embedding.commands <args>`` in a fresh interpreter (and session), output captured as text.

    ``env`` adds variables to the command line's environment (a launcher's, say).
    """
    return subprocess.Popen([sys.executable, "-m", "embedding.commands", *args], cwd=cwd,
                            env={**cli_env(), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (for a job's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finish_cli(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    """Wait for a run from ``start_cli``: its exit code and stderr. Past ``timeout`` it and its children are killed."""
    try:
        _, stderr = process.communicate(timeout=timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    return process.returncode, stderr


def _main_in_child(args: list[str], log: str, prepare: Callable[[], None] | None) -> None:
    import torch

    torch.set_num_threads(1)
    if prepare is not None:
        prepare()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    logging.root.handlers.clear()
    sys.argv = ["embed", *args]
    from embedding.commands import main

    main()


def fork_cli(args: list[str], log: Path, prepare: Callable[[], None] | None = None) -> multiprocessing.Process:
    """``embed <args>`` through ``embedding.commands.main`` in a forked process; its output is appended to ``log``.

    ``prepare`` runs in the new process first (to make it die at a chosen moment, say).
    """
    process = multiprocessing.get_context("fork").Process(target=_main_in_child, args=(args, str(log), prepare))
    process.start()
    return process


def wait_for(condition: Callable[[], bool], process: multiprocessing.Process, timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``process`` ends first (False).

    Past ``timeout`` seconds the process is killed and ``TimeoutError`` raised.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if not process.is_alive():
            return condition()
        time.sleep(0.005)
    process.kill()
    process.join()
    raise TimeoutError(f"condition not met within {timeout:.0f} s")


def join(process: multiprocessing.Process, timeout: float) -> int:
    """Wait for ``process`` to end and return its exit code; past ``timeout`` seconds kill it and raise."""
    process.join(max(timeout, 0.1))
    if process.is_alive():
        process.kill()
        process.join()
        raise TimeoutError(f"the run did not end within {timeout:.0f} s")
    return process.exitcode
