"""Progress of long work in a log file: periodic lines (share done, time taken and left) and a last line."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import pytest

import embedding.progress
from embedding.edits.directions import linear_boundary
from embedding.progress import Progress, duration, progress


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Make every reading of the progress clock ``seconds`` later than the one before, as in a slow run."""

    def set_step(seconds: float) -> None:
        ticks: Iterator[float] = (k * seconds for k in range(1_000_000))
        monkeypatch.setattr(embedding.progress, "monotonic", lambda: next(ticks))

    return set_step


def lines(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


def test_boundary_sampling_logs_its_progress_when_stderr_is_not_a_terminal(tiny_generator, slow_clock, capsys,
                                                                          caplog):
    caplog.set_level(logging.INFO)
    slow_clock(3.0)  # three seconds a batch of 10 samples: half a minute for 100
    linear_boundary(tiny_generator, lambda images: images.mean(dim=(1, 2, 3)), samples=100, batch=10)
    logged = lines(caplog, "boundary samples:")
    assert logged[0] == "boundary samples: 10/100 samples (10%), 3.0 s, about 27 s left"
    assert len(logged) == 10, "a line at every tenth of the work, then the last"
    assert re.fullmatch(r"boundary samples: 100/100 samples in \d+ s", logged[-1])
    assert "\r" not in capsys.readouterr().err, "no terminal bar in a log"


def test_a_long_wait_between_tenths_still_gives_a_line_every_30_s(slow_clock, caplog):
    caplog.set_level(logging.INFO)
    slow_clock(10.0)
    with Progress(None, "render", "frame") as shown:  # total unknown: no shares, only time
        for _ in range(7):
            shown.update()
    assert lines(caplog, "render:") == ["render: 3 frames, 30 s", "render: 6 frames, 60 s", "render: 7 frames in 80 s"]


def test_quick_loops_write_only_their_last_line_and_a_stopped_loop_says_where(caplog):
    caplog.set_level(logging.INFO)
    for _ in progress(range(5), "encode", "photo", terminal=False):
        pass
    for k in progress(range(10), "align", "photo", terminal=False):
        if k == 3:
            break
    assert [line.rsplit(" ", 2)[0] for line in lines(caplog, "")] == ["encode: 5/5 photos in",
                                                                      "align: stopped at 3/10 photos after"]


def test_on_a_terminal_it_is_a_bar_not_log_lines(caplog, capsys):
    caplog.set_level(logging.INFO)
    for _ in progress(range(5), "align", "photo", terminal=True):
        pass
    assert not caplog.records
    assert "align: 100%" in capsys.readouterr().err


def test_durations_read_plainly():
    assert [duration(s) for s in (0.44, 41, 137, 3900)] == ["0.4 s", "41 s", "2 min 17 s", "1 h 05 min"]
