"""Feedback on standard error for work that can take more than a couple of seconds.

    with Progress("verifying against SB2", total=64) as progress:
        for ...:
            progress.advance()

A `Progress` shows nothing for work that ends within `delay` seconds (most calls), then one line redrawn in place:
what it is doing, how far (done/total, when known) and the elapsed time; a background thread keeps the elapsed time
moving while one long call (a compiler, SB2 loading a model) blocks. The line is erased when the work ends.

It is quiet where a line of progress would be noise: when standard error is not a terminal (logs, pipes, CI), under
`--json` (the CLI calls `silence()`), or with SBIF_PROGRESS=0. SBIF_PROGRESS=1 forces it on (tests, `script`).
Stdlib only: a progress bar library would be a dependency of the core for a dozen lines.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO, Any, Optional

#: seconds of work before a line appears, and between redraws
DEFAULT_DELAY = 2.0
REFRESH_SECONDS = 0.25
_silenced = False


def silence(quiet: bool = True) -> None:
    """Turn progress off (or back on) for this process: the CLI's `--json` modes call this."""
    global _silenced
    _silenced = quiet


def enabled(stream: Optional[IO[str]] = None) -> bool:
    """Whether progress lines go to `stream` (default stderr): a terminal, not silenced, SBIF_PROGRESS not 0."""
    setting = os.environ.get("SBIF_PROGRESS", "")
    if _silenced or setting == "0":
        return False
    if setting == "1":
        return True
    stream = stream or sys.stderr
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """One task's progress line. `total` None: an activity without a count (elapsed time only)."""

    def __init__(self, what: str, total: Optional[int] = None, delay: float = DEFAULT_DELAY,
                 stream: Optional[IO[str]] = None):
        self.what = what
        self.total = total
        self.done = 0
        self.detail = ""
        self.delay = delay
        self.stream = stream or sys.stderr
        self.active = enabled(self.stream)
        self.started = time.monotonic()
        self._shown = 0  # characters of the line on screen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None
        if self.active:
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

    def close(self, summary: Optional[str] = None) -> None:
        """End the task: erase the line, and print `summary` if the line was ever shown (or always, when given
        and enabled, so a long task says how it ended)."""
        if self._ticker is None:
            return
        self._stop.set()
        self._ticker.join()
        self._ticker = None
        with self._lock:
            shown = self._shown
            if shown:
                self._write("\r" + " " * shown + "\r")
                self._shown = 0
            if summary and shown:
                self._write("{}\n".format(summary))

    def line(self) -> str:
        """The text shown now, e.g. 'verifying against SB2: 12/64 (19%), batch 3, 4.2 s'."""
        parts = []
        if self.total:
            parts.append("{}/{} ({:.0f}%)".format(self.done, self.total, 100.0 * self.done / self.total))
        elif self.done:
            parts.append(str(self.done))
        if self.detail:
            parts.append(self.detail)
        parts.append("{:.0f} s".format(time.monotonic() - self.started))
        return "{}: {}".format(self.what, ", ".join(parts))

    def _tick(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            with self._lock:
                text = self.line()
                width = _terminal_width(self.stream) - 1
                text = text if len(text) <= width else text[:max(width - 3, 0)] + "..."
                self._write("\r" + text + " " * max(self._shown - len(text), 0))
                self._shown = len(text)
            if self._stop.wait(REFRESH_SECONDS):
                return

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: progress is best effort
            self._stop.set()


def _terminal_width(stream: IO[str]) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 100
