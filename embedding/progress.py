"""Progress of long loops, readable on a terminal and in a log file alike.

    for path in progress(paths, "align", unit="photo"):
        ...

On a terminal (stderr is a TTY) it is a tqdm bar. Otherwise (stderr goes to a file or a pipe,
where a bar is one endless line of carriage returns) it is a log line every ``every_fraction``
of the work (but no sooner than ``min_s`` after the previous line, so that quick loops write their
last line only) or every ``every_s`` seconds, whichever comes first, then a last line:

    INFO embedding: boundary samples: 120/400 samples (30%), 41 s, about 96 s left
    INFO embedding: boundary samples: 400/400 samples in 2 min 17 s
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from time import monotonic
from types import TracebackType
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")
EVERY_S = 30.0
EVERY_FRACTION = 0.1
MIN_S = 2.0


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal (False for files, pipes and captured streams)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def duration(seconds: float) -> str:
    """Seconds in plain words: ``0.4 s``, ``41 s``, ``2 min 17 s``, ``1 h 05 min``."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Progress of ``total`` units of work (None: unknown): a tqdm bar on a terminal, else periodic log lines.

    ``update(n)`` counts finished units; ``set_postfix`` adds values shown with the count (the loss,
    the phase). ``terminal`` None asks stderr; ``disable`` shows nothing at all. Use it as a context
    manager, or call ``close`` for the last line.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "it", *, every_s: float = EVERY_S,
                 every_fraction: float = EVERY_FRACTION, min_s: float = MIN_S, terminal: bool | None = None,
                 disable: bool = False, logger: logging.Logger | None = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.every_s, self.min_s = every_s, min_s
        self.n = 0
        self.postfix: dict[str, Any] = {}
        self.log = logger or logging.getLogger("embedding")
        self.disabled = disable
        self.bar = None
        if not disable and (stderr_is_terminal() if terminal is None else terminal):
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        self.start = self.last = monotonic()
        self.marks, self.mark = max(1, round(1 / every_fraction)), 0  # a line at each 1/marks of the work
        self.closed = False

    def update(self, n: int = 1) -> None:
        """Count ``n`` more finished units; in a log, write a line when the work has passed the next step of
        ``every_fraction`` (and ``min_s`` have passed) or ``every_s`` seconds have passed since the last line."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            return
        if self.disabled or (self.total is not None and self.n >= self.total):
            return  # the last line is close's
        now, mark = monotonic(), self.n * self.marks // self.total if self.total else 0
        if (mark > self.mark and now - self.last >= self.min_s) or now - self.last >= self.every_s:
            self.last, self.mark = now, mark
            self.log.info("%s", self.line(now))

    def set_postfix(self, values: Mapping[str, Any]) -> None:
        """Values shown beside the count from now on (``{"loss": 0.39, "phase": "WI 2/2"}``)."""
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix(self.postfix, refresh=False)

    def line(self, now: float | None = None) -> str:
        """The log line for the work done so far: count, share, values, time taken and time left."""
        elapsed = (monotonic() if now is None else now) - self.start
        parts = [f"{self.desc}: {self._count()}" + (f" ({self.n / self.total:.0%})" if self.total else "")]
        parts += [f"{key} {_plain(value)}" for key, value in self.postfix.items()]
        parts.append(duration(elapsed))
        if self.total and 0 < self.n < self.total:
            parts.append(f"about {duration(elapsed / self.n * (self.total - self.n))} left")
        return ", ".join(parts)

    def _count(self) -> str:
        return f"{self.n}/{self.total} {self.unit}s" if self.total is not None else f"{self.n} {self.unit}s"

    def close(self) -> None:
        """End the bar, or write the last line: how much was done, and in how long."""
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        elif not self.disabled:
            values = "".join(f", {key} {_plain(value)}" for key, value in self.postfix.items())
            took = duration(monotonic() - self.start)
            if self.total is None or self.n >= self.total:
                self.log.info("%s: %s%s in %s", self.desc, self._count(), values, took)
            else:
                self.log.info("%s: stopped at %s%s after %s", self.desc, self._count(), values, took)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


def progress(items: Iterable[T], desc: str, unit: str = "it", total: int | None = None, **options: Any) -> Iterator[T]:
    """``items`` one by one, their progress shown by a :class:`Progress` (``total`` defaults to ``len(items)``).

    ``options`` go to :class:`Progress` (``every_s``, ``every_fraction``, ``min_s``, ``terminal``, ``disable``,
    ``logger``).
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Progress(total, desc, unit, **options) as bar:
        for item in items:
            yield item
            bar.update()


def _plain(value: Any) -> str:
    """A value as a log line shows it: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
