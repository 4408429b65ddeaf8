"""File stores (log files, exports, dumps; plain, gzip, bzip2 or xz): read line by line, prefiltered by bytes.

A line is decoded and matched only when one byte pattern of the plan's (the canary literal in any
case, in UTF-8 or UTF-16; a 32-digit hex run; a weak value) occurs in it; a line longer than
``_FILE_PIECE`` is read in overlapping pieces so no value is cut in two unseen.

The sweep's time budget (``timeouts.sweep``) is looked at before each file and every
``_BUDGET_EVERY`` lines inside one; once it has run out, the rest of the file (from its line
number on), the files after it and the globs not yet listed are unswept.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import lzma
import os
import re
import stat
import time
import zlib
from collections.abc import Iterator

from privacy_checks.observe.forms import Needle, texts_of_bytes

from .base import (
    Hit,
    Plan,
    StoreSpec,
    SweepResult,
    Timing,
    Unswept,
    dedup,
    files_not_reached,
    make_hit,
    nothing_to_sweep,
    tested_in_process,
)
from .progress import Budget

_FILE_PIECE = 1 << 20  # a line longer than this is read in pieces
# What a file or object may be compressed with, by its first bytes: read through, or (None) named
# as unreadable. Raw bytes of a compressed log hold no canary, so reading them would sweep it clean.
_COMPRESSED: list[tuple[re.Pattern[bytes], str, object]] = [
    (re.compile(rb"\x1f\x8b"), "gzip", gzip.GzipFile),
    (re.compile(rb"BZh[1-9]1AY&SY"), "bzip2", bz2.BZ2File),
    (re.compile(rb"\xfd7zXZ\x00"), "xz", lzma.LZMAFile),
    (re.compile(rb"\x5d\x00\x00"), "lzma", lzma.LZMAFile),  # legacy .lzma: its magic is weak, so by name too
    (re.compile(rb"\x28\xb5\x2f\xfd"), "zstd", None),
    (re.compile(rb"\x04\x22\x4d\x18"), "lz4", None),
    (re.compile(rb"PK\x03\x04"), "zip", None),
    (re.compile(rb"7z\xbc\xaf\x27\x1c"), "7z", None),
]
# errors of reading compressed data that are not OSError: corrupt deflate or xz data
UNREADABLE = (OSError, EOFError, zlib.error, lzma.LZMAError)


class Unreadable(Exception):
    """A file or object in a form the sweep cannot read (a compression it has no reader for)."""


def decompressed(stream, name: str):
    """``stream`` (buffered: it can ``peek``) read through the compression its first bytes name
    (gzip also by a ``.gz`` name); ``Unreadable`` for one the sweep cannot read."""
    head = stream.peek(16)[:16]
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=stream)
    for magic, what, reader in _COMPRESSED:
        if what == "lzma" and not name.endswith(".lzma"):
            continue
        if magic.match(head):
            if reader is None:
                raise Unreadable(f"compressed with {what}, which the sweep cannot read")
            return reader(stream)
    return stream
_PIECE_OVERLAP = 512  # longer than any form of a canary-bearing value we expect
# Lines (or pieces) read between two looks at the sweep's time budget: a look costs a clock read.
_BUDGET_EVERY = 4096


def sweep_store(store: StoreSpec, plan: Plan, timeout_s: float, result: SweepResult) -> None:
    """Sweep every file the store's globs match into ``result``."""
    _sweep_files(store, plan, result)


def _literal_root(pattern: str) -> str:
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return os.sep.join(parts[:i]) or os.sep
    return os.path.dirname(pattern)


def _through_link(path: str, root: str) -> str | None:
    """The link to a directory below the glob's literal ``root`` that ``path`` passes through,
    if any. (Globs follow such links, and a link back up the tree repeats the tree many times.)"""
    current = root
    for part in os.path.relpath(path, root).split(os.sep)[:-1]:
        current = os.path.join(current, part)
        if os.path.islink(current):
            return current
    return None


def _walk(paths: list[str], unlisted: list[tuple[str, str]]) -> Iterator[str]:
    """Every file the glob's matches name: a matched directory is walked (``**`` matches
    directories too, and a directory of dumps is a place data rests), without following links
    to directories, so a link loop cannot walk forever. A link to a directory is yielded as it
    is (``_sweep_file`` lists it as unswept); a directory that cannot be listed goes to
    ``unlisted`` with its error."""
    for path in paths:
        if os.path.isdir(path) and not os.path.islink(path):
            def fail(e: OSError, top: str = path) -> None:
                unlisted.append((e.filename or top, f"cannot list the directory: {type(e).__name__}: {e.strerror}"))

            for root, dirs, files in os.walk(path, onerror=fail):
                dirs.sort()
                for name in sorted(files):
                    yield os.path.join(root, name)
                yield from (os.path.join(root, d) for d in dirs if os.path.islink(os.path.join(root, d)))
        else:
            yield path


def _sweep_files(store: StoreSpec, plan: Plan, result: SweepResult) -> None:
    done: set[str] = set()
    patterns = store.files or []
    for p, pattern in enumerate(patterns):
        expanded = os.path.expanduser(pattern)
        root = _literal_root(expanded)
        matched = glob.glob(expanded, recursive=True)
        links = {p: _through_link(p, root) for p in matched}
        # what lies behind a link to a directory is not read: the link is (listed as unswept)
        paths = sorted({p for p, link in links.items() if link is None} | {link for link in links.values() if link})
        if not paths:
            result.empty_globs.append((store.name, pattern))
            continue
        unlisted: list[tuple[str, str]] = []
        files = list(_walk(paths, unlisted))
        for where, reason in unlisted:
            if where not in done:
                done.add(where)
                result.unswept.append(Unswept(store.name, where, reason))
        result.queries.append(f"{store.name}: every line of the {len(files)} file(s) {pattern} matches (gzip read "
                              f"through), tested in this process for {tested_in_process(plan)}")
        for i, path in enumerate(files):
            if path in done:
                continue  # "logs/**" matches a directory and every file under it
            if result.budget.exceeded():  # between files: a file begun is read to its end
                files_not_reached(result, store.name, [f for f in files[i:] if f not in done], patterns[p + 1:])
                return
            done.add(path)
            t0 = time.perf_counter()
            n = _sweep_file(store, plan, path, result)
            result.count(store.name, "files")
            result.timings.append(Timing(store.name, path, time.perf_counter() - t0, n))
    if not done:
        # one glob of several may match nothing (rotated logs not there yet); all of them, never
        nothing_to_sweep(result, store.name, ", ".join(store.files or []), "no file matches the store's globs")


class OutOfTime(Exception):
    """The sweep's time budget ran out inside a file or object: from line ``line`` on, not read."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _pieces(stream, budget: Budget | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, piece): whole lines, or overlapping pieces of a line too long to hold.
    ``budget``: looked at every ``_BUDGET_EVERY`` pieces; ``OutOfTime`` once it has run out
    (every piece yielded before was searched: nothing read is lost)."""
    number = 1
    tail = b""
    count = 0
    while True:
        count += 1
        if budget is not None and count % _BUDGET_EVERY == 0 and budget.exceeded():
            raise OutOfTime(number)
        piece = stream.readline(_FILE_PIECE)
        if not piece:
            return
        yield number, tail + piece
        if piece.endswith(b"\n"):
            number += 1
            tail = b""
        else:
            # Keep the end of this piece so a value split across pieces is still whole once.
            tail = piece[-_PIECE_OVERLAP:]


def candidate_lines(plan: Plan, stream, budget: Budget | None = None) -> Iterator[tuple[int, str]]:
    """(line number, decoded text) of every line (or piece of a long line) the plan's byte
    prefilter lets through, read as UTF-8 and, where a canary occurs in UTF-16, as UTF-16 too
    (so a line may come twice, once per reading); the Matcher then decides. Shared with object
    stores (s3.py). Raises ``OutOfTime`` when ``budget`` runs out (a big file is one unit of a
    store, and may take longer than the whole budget)."""
    for number, piece in _pieces(stream, budget):
        if plan.prefilter is None or not plan.prefilter.search(piece):
            continue
        for text in texts_of_bytes(piece.rstrip(b"\r\n")):
            yield number, text.rstrip("\r\n")


def _sweep_file(store: StoreSpec, plan: Plan, path: str, result: SweepResult) -> int:
    if os.path.isdir(path):
        # A link to a directory: not followed (it may lead back up the tree).
        result.unswept.append(Unswept(store.name, path, "is a link to a directory (not followed)"))
        return 0
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        result.unswept.append(Unswept(store.name, path, f"unreadable: {type(e).__name__}: {e}"))
        return 0
    if not stat.S_ISREG(mode):
        # a FIFO waits for a writer that may never come, a device may never end
        what = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        result.unswept.append(Unswept(store.name, path, f"not a regular file ({what}): not read"))
        return 0
    candidates = 0
    hits: list[Hit] = []
    seen: set[tuple[int, Needle, str]] = set()
    try:
        with open(path, "rb") as raw:
            stream = decompressed(raw, path)
            for number, text in candidate_lines(plan, stream, result.budget):
                candidates += 1
                for m in dedup(plan.find(text)):
                    if (number, m.needle, m.form) in seen:
                        continue
                    seen.add((number, m.needle, m.form))
                    hits.append(make_hit(store.name, "file", path, number, None, m, text))
    except OutOfTime as e:  # hits before it stand; the rest of the file is unknown
        result.unswept.append(Unswept(store.name, f"{path}, from line {e.line} on", result.budget.reason()))
    except Unreadable as e:
        result.unswept.append(Unswept(store.name, path, str(e)))
    except UNREADABLE as e:
        # Hits before the failure stand; the rest of the file is unknown.
        result.unswept.append(Unswept(store.name, path, f"unreadable: {type(e).__name__}: {e}"))
    result.hits += hits
    return candidates
