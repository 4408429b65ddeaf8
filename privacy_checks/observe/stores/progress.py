"""How long a sweep may take (the profile's ``timeouts.sweep``) and what it shows while it runs.

A sweep over a large store can take minutes. The budget bounds one sweep (every store of one
``sweep()`` call): ``sweep()`` checks it before each store, and each kind between its own units
of work (SQL tables, Redis SCAN pages, S3 object versions, files, Spark tables and paths; in a
log file or text object, every 4,096 lines too): what was read is always searched whole, and
what is not reached before it runs out is listed as unswept, each with the reason
(``base.not_reached`` names the places), so an absence check over them is an error naming them,
never a pass.

Progress goes to the stream the run configures (the terminal), only for a sweep that has run
longer than ``SHOW_AFTER_S`` (the many short sweeps of polling loops stay silent): the store,
the table, tables done of all, rows the engine returned as candidates, elapsed time and an
estimate. On a terminal one line is rewritten in place; anywhere else (a CI log) each line is
plain text, with no control characters. No stream (``-q``, or nothing configured): silent.
Under pytest-xdist a worker's lines go through a file to the controller, which prints them with
the worker's id (``WorkerRelay``, ``RelayTail``).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

SHOW_AFTER_S = 2.0
# On a log, one line per this many seconds at most.
LOG_EVERY_S = 5.0


@dataclass
class _Settings:
    budget_s: float | None = None
    stream: TextIO | None = None


_SETTINGS = _Settings()


def configure(*, budget_s: float | None = None, stream: TextIO | None = None) -> None:
    """Set for the whole run (plugin.py): the budget of one sweep, and where progress goes."""
    _SETTINGS.budget_s = budget_s
    _SETTINGS.stream = stream


@dataclass
class Budget:
    """The time one sweep() call may take, and its progress display."""

    seconds: float | None
    stream: TextIO | None = None
    started: float = field(default_factory=time.monotonic)
    _last_shown: float = 0.0
    _shown: bool = False

    @classmethod
    def current(cls, seconds: float | None = None) -> Budget:
        return cls(seconds if seconds is not None else _SETTINGS.budget_s, _SETTINGS.stream)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def exceeded(self) -> bool:
        return self.seconds is not None and self.elapsed() > self.seconds

    def reason(self) -> str:
        return (f"not swept: the sweep's time budget (timeouts.sweep: {self.seconds:g} s) ran out after "
                f"{self.elapsed():.1f} s, before this was reached")

    def table_done(self, store: str, where: str, done: int, total: int, rows: int) -> None:
        stream = self.stream
        elapsed = self.elapsed()
        if stream is None or elapsed < SHOW_AFTER_S:
            return
        tty = bool(getattr(stream, "isatty", lambda: False)())
        if not tty and time.monotonic() - self._last_shown < LOG_EVERY_S and done < total:
            return
        estimate = f", about {elapsed / done * (total - done):.0f} s more in this store" if done < total else ""
        line = f"sweep {store}: {where} ({done}/{total} tables), {rows} candidate rows, {elapsed:.1f} s{estimate}"
        try:
            if tty:
                stream.write("\r" + line[:160].ljust(160))
                if done == total:
                    stream.write("\n")
            else:
                stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed terminal must not break a sweep
            return
        self._last_shown = time.monotonic()
        self._shown = True


class TerminalStream:
    """pytest's terminal, written to past its output capture (as live logging does)."""

    def __init__(self, config) -> None:
        self.config = config
        self._open = False  # our last write left its line open (a line rewritten in place)

    def isatty(self) -> bool:
        # a CI log gets plain lines even when colours are forced on
        writer = self.config.get_terminal_writer()
        return bool(getattr(writer, "hasmarkup", False)) and not os.environ.get("CI")

    def write(self, text: str) -> None:
        capture = self.config.pluginmanager.getplugin("capturemanager")
        writer = self.config.get_terminal_writer()
        if not self._open and getattr(writer, "width_of_current_line", 0):
            # pytest's progress dots are on this line: start our own, never glue onto theirs
            text = "\n" + text
        self._open = not text.endswith("\n")
        if capture is None:
            writer.write(text)
            return
        with capture.global_and_fixture_disabled():
            writer.write(text)

    def flush(self) -> None:
        self.config.get_terminal_writer().flush()


class WorkerRelay:
    """A pytest-xdist worker's progress: its terminal is not the user's, so each line goes to a
    file the controller reads (``RelayTail``), prefixed with the worker's id. Lines only, as on a
    CI log: the controller shares one terminal among the workers."""

    def __init__(self, path: str, worker: str) -> None:
        self.path, self.prefix = path, f"[{worker}] "

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> None:
        lines = [line for line in text.splitlines() if line.strip()]
        if lines:
            # one append per write: O_APPEND keeps whole lines from several workers apart
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(self.prefix + line + "\n" for line in lines))

    def flush(self) -> None:
        pass


class RelayTail:
    """The controller's side of ``WorkerRelay``: a thread that prints the workers' progress lines
    to the terminal as they come (every half second), and the rest when the run ends."""

    def __init__(self, path: str, stream: TextIO) -> None:
        self.path, self.stream = path, stream
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="privacy-checks-progress", daemon=True)

    def start(self) -> RelayTail:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.drain()

    def drain(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self._offset)
                text = f.read()
        except OSError:
            return
        complete = text[: text.rfind("\n") + 1]  # a line still being appended waits for the next look
        if not complete:
            return
        self._offset += len(complete.encode("utf-8"))
        try:
            self.stream.write(complete)
            self.stream.flush()
        except (OSError, ValueError):  # a closed terminal must not break the run
            pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.drain()
