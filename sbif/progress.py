"""Feedback on standard error for work that can take more than a couple of seconds.

    with Progress("verifying against SB2", total=64) as progress:
        for ...:
            progress.advance()

A `Progress` shows nothing for work that ends within `delay` seconds (most calls), then one line redrawn in place:
what it is doing, how far (done/total, when known) and the elapsed time; a background thread keeps the elapsed time
moving while one long call (a compiler, SB2 loading a model) blocks. The line is erased when the work ends.

Tasks nest: while an inner task (the numba kernels built during a conformance run) is active, its line replaces the
outer one, which comes back when the inner task ends. `echo` prints a message above the line (a plain line when no
progress is shown), so a command's own log lines and its progress line do not overwrite each other.

It is quiet where a line of progress would be noise: when standard error is not a terminal (logs, pipes, CI), under
`--json` (the CLI calls `silence()`), or with SBIF_PROGRESS=0. SBIF_PROGRESS=1 forces it on (tests, `script`).
Stdlib only: a progress bar library would be a dependency of the core for a dozen lines.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Any, Dict, List, Optional, Tuple

#: seconds of work before a line appears, and between redraws
DEFAULT_DELAY = 2.0
REFRESH_SECONDS = 0.25
#: characters of the detail (what the task is doing now) kept before the task's name is shortened on a narrow line
DETAIL_KEPT = 44
#: the environment variable that turns progress off (0) or forces it on (1)
PROGRESS_ENV = "SBIF_PROGRESS"
_silenced = False
#: guards the screen state below and every write of a progress line
_screen_lock = threading.RLock()
#: the enabled tasks not yet closed, oldest first: on each stream only the newest draws its line
_open_tasks: List["Progress"] = []
#: the streams with a progress line on them now (keyed by id), with the line's length, to erase or overwrite it
_lines: Dict[int, Tuple[IO[str], int]] = {}


def silence(quiet: bool = True) -> None:
    """Turn progress off (or back on) for this process: the CLI's `--json` modes call this."""
    global _silenced
    _silenced = quiet


def enabled(stream: Optional[IO[str]] = None) -> bool:
    """Whether progress lines go to `stream` (default stderr): a terminal, not silenced, SBIF_PROGRESS not 0."""
    setting = os.environ.get(PROGRESS_ENV, "")
    if _silenced or setting == "0":
        return False
    if setting == "1":
        return True
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def echo(message: str, stream: Optional[IO[str]] = None) -> None:
    """Print `message` as a line of its own on `stream` (default stderr), with any progress line erased first
    (stdout and stderr often share a terminal; the line is redrawn at its next refresh): a plain print otherwise."""
    with _screen_lock:
        for shown, _ in list(_lines.values()):
            _erase(shown)
        _write(stream or sys.stderr, message + "\n")


class Progress:
    """One task's progress line. `total` None: an activity without a known end (a count of what is done, if any,
    and the elapsed time). `unit` names what is counted ("checks": '12/64 checks (19%)'). `delay` (default
    DEFAULT_DELAY, read when the task starts): seconds before the line appears."""

    def __init__(self, what: str, total: Optional[int] = None, delay: Optional[float] = None,
                 stream: Optional[IO[str]] = None, unit: str = ""):
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.detail = ""
        self.delay = DEFAULT_DELAY if delay is None else delay
        self.stream = stream or sys.stderr
        self.active = enabled(self.stream)
        self.started = time.monotonic()
        self._shown = False  # whether this task's line was ever drawn (then close prints its summary)
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None
        if self.active:
            with _screen_lock:
                _open_tasks.append(self)
            self._ticker = threading.Thread(target=self._tick, name="sbif-progress", daemon=True)
            self._ticker.start()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def advance(self, count: int = 1, detail: Optional[str] = None) -> None:
        """`count` more units done (and, optionally, what is being done now)."""
        self.done += count
        if detail is not None:
            self.detail = detail

    def doing(self, detail: str) -> None:
        """Say what the task is doing now (shown after the count)."""
        self.detail = detail

    def elapsed(self) -> float:
        """Seconds since the task started."""
        return time.monotonic() - self.started

    def close(self, summary: Optional[str] = None) -> None:
        """End the task: erase its line, and print `summary` if the line was ever shown (work long enough to
        show progress is worth a line saying how it ended; a quick one stays silent). Closing twice is harmless."""
        if self._ticker is None:
            return
        self._stop.set()
        self._ticker.join()
        self._ticker = None
        with _screen_lock:
            _open_tasks.remove(self)
            if self._shown:
                _erase(self.stream)
                if summary:
                    _write(self.stream, summary + "\n")

    def line(self, width: Optional[int] = None) -> str:
        """The text shown now, e.g. 'verifying against SB2: 12/64 (19%), batch 3, 4 s'; in at most `width`
        characters, if given, by shortening what the task is doing, then its name (the count and the elapsed time
        are what a glance is for)."""
        unit = " " + self.unit if self.unit else ""
        count = ""
        if self.total:
            count = "{}/{}{} ({:.0f}%), ".format(self.done, self.total, unit, 100.0 * self.done / self.total)
        elif self.done:
            count = "{}{}, ".format(self.done, unit)
        detail = self.detail + ", " if self.detail else ""
        what, elapsed = self.what + ": ", "{:.0f} s".format(self.elapsed())
        if width is not None:  # the detail down to DETAIL_KEPT characters, then the name, then the detail again
            fixed = len(count) + len(elapsed)
            detail = _shortened(detail, max(width - fixed - len(what), min(len(detail), DETAIL_KEPT)), ", ")
            what = _shortened(what, width - fixed - len(detail), ": ")
            detail = _shortened(detail, width - fixed - len(what), ", ")
        return what + count + detail + elapsed

    def _tick(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            with _screen_lock:
                if self._stop.is_set():
                    return
                if self._newest_on_stream():
                    self._draw()
            if self._stop.wait(REFRESH_SECONDS):
                return

    def _newest_on_stream(self) -> bool:
        return next(task for task in reversed(_open_tasks) if task.stream is self.stream) is self

    def _draw(self) -> None:
        text = self.line(_terminal_width(self.stream) - 1)
        on_screen = _lines.get(id(self.stream), (self.stream, 0))[1]
        if _write(self.stream, "\r" + text + " " * max(on_screen - len(text), 0)):
            _lines[id(self.stream)] = (self.stream, len(text))
            self._shown = True
        else:
            self._stop.set()  # the terminal went away: progress is best effort


def _shortened(text: str, room: int, ending: str) -> str:
    """`text` (which ends with `ending`) cut to `room` characters with '...' before its ending; '' if no room."""
    if len(text) <= room:
        return text
    if room < len(ending) + 4:  # (a negative room too)
        return ""
    return text[:room - len(ending) - 3] + "..." + ending


def _erase(stream: IO[str]) -> None:
    """Blank the progress line on `stream`, if one is there (the caller holds _screen_lock)."""
    length = _lines.pop(id(stream), (stream, 0))[1]
    if length:
        _write(stream, "\r" + " " * length + "\r")


def _write(stream: IO[str], text: str) -> bool:
    try:
        stream.write(text)
        stream.flush()
        return True
    except (OSError, ValueError):
        return False


def _terminal_width(stream: IO[str]) -> int:
    """The terminal's width: $COLUMNS when set (as shutil reads it), else the stream's terminal, else (a pipe, or
    a pseudo-terminal without a size, as under `script`) 100."""
    widths = [os.environ.get("COLUMNS", "")]
    try:
        widths.append(os.get_terminal_size(stream.fileno()).columns)
    except (AttributeError, OSError, ValueError):
        pass
    for width in widths:
        try:
            if int(width) > 0:
                return int(width)
        except ValueError:
            continue
    return 100
