"""Storage residue of SQLite stores: canaries still in the database's files after SQL stops
returning them.

A row SQLite deletes is gone from SQL at once, but its bytes stay in the files until something
overwrites them: in the free space of a page and on free pages unless ``PRAGMA secure_delete``
is on (and after VACUUM rewrites the file), in old frames of the ``-wal`` file until the log is
reused from its start, in a ``-journal`` left by ``journal_mode=PERSIST``. Anyone who copies the
file (a backup, a support dump, a stolen laptop) can still read them.

The scan reads each file once, in chunks, and looks for ``forms.LITERAL`` in any letter case,
as UTF-8 and as UTF-16: every in-text form of a canary of the current format holds it (exact,
case-folded, URL-encoded, base64 at every alignment; see forms.py), so one bytes search finds
every subject's canaries at once. Only around each occurrence is anything decoded, to say whose
canary it is and, where the subject's whole value is there too, which field. Chunks rather than
``mmap``: a checkpoint may truncate the ``-wal`` while we read it, and a mapped page past the
new end would kill the process (SIGBUS) instead of ending a read.

Not seen by this scan: a canary split across overflow pages (a value over about a page in
size), terms of an FTS index (stored prefix-compressed), canaries of the previous format in
base64, and whole-value digests (they carry no literal). The database file must be on this
machine: a server database (PostgreSQL, MySQL) is not scanned, and the scan says so.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from privacy_checks.observe.forms import (
    LEGACY_MARKER,
    LITERAL,
    MARKER,
    TEXT_FORMS,
    Matcher,
    Needle,
    canary_needles,
    excerpt,
    token_key,
    utf16_bytes,
)
from privacy_checks.observe.typed import split_typed

from .base import StoreSpec

MODES = ("report", "fail", "off")
DEFAULT_MODE = "report"
CHUNK = 8 << 20
# Bytes read around an occurrence to decode it: a subject's whole value (an address, a
# base64-encoded profile) must fit for the scan to name the field, not only the subject.
CONTEXT = 384
# The file parts of one database, as the findings name them.
PARTS = (("database", ""), ("-wal", "-wal"), ("-journal", "-journal"))
_WAL_HEADER = 32
_TOKEN_BYTES = len(MARKER) + 10
_WRITTEN = re.compile(MARKER + r"[a-z][a-z2-7]{9}")
_WAL_FRAME_HEADER = 24


@dataclass(frozen=True)
class Residue:
    """One of a subject's canaries found in a database's files."""

    store: str
    path: str
    part: str  # database | -wal | -journal
    offset: int
    where: str  # "page 12 (a free page)", "frame 7 (page 3; the page's latest version in the log)"
    subject_id: str
    field: str
    form: str
    excerpt: str

    def place(self) -> str:
        return f"{self.store}: file {self.path} ({self.part}), byte {self.offset} in {self.where}"


@dataclass
class ResidueScan:
    """What one store's scan read and found; ``not_scanned`` says why it read nothing."""

    store: str
    mode: str
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (part, path, bytes)
    found: list[Residue] = field(default_factory=list)
    others: int = 0  # occurrences of the literal that belong to no subject asked about
    seconds: float = 0.0
    not_scanned: str | None = None

    def subjects(self) -> set[str]:
        return {r.subject_id for r in self.found}


def mode_of(store: StoreSpec) -> str:
    return str(store.options.get("storage_residue") or DEFAULT_MODE)


def database_file(store: StoreSpec) -> tuple[Path | None, str | None]:
    """The SQLite database file of a store, or None and why it cannot be scanned."""
    try:
        url = sa.make_url(store.url or "")
    except Exception:  # noqa: BLE001 - the SQL sweep reports a bad URL; here it is only unscannable
        return None, "its URL cannot be parsed"
    backend = url.get_backend_name()
    if backend != "sqlite":
        return None, (f"a {backend} database is on its server, not in a file on this machine; what it keeps "
                      "until VACUUM (dead row versions, TOAST, WAL segments) is not readable through SQL "
                      "(see docs/profile.md, storage_residue)")
    database = url.database or ""
    if database in ("", ":memory:"):
        return None, "it names no database file"
    if database.startswith("file:"):
        database = database[len("file:"):].split("?", 1)[0]
        if database.startswith("//"):  # file://host/path: only a local path is a file here
            database = database[2:].partition("/")[2]
            database = "/" + database
    path = Path(os.path.abspath(database))
    if not path.is_file():
        return None, f"its database file {path} is not on this machine"
    return path, None


def scan(store: StoreSpec, needles: Sequence[Needle]) -> ResidueScan:
    """Scan one SQLite store's files for the needles' canaries (their in-text forms)."""
    result = ResidueScan(store.name, mode_of(store))
    path, why = database_file(store)
    if path is None:
        result.not_scanned = why
        return result
    text_needles, _ = split_typed(n for n in needles if not n.weak)
    matchers = _Matchers(text_needles)
    probes = [LITERAL.encode()]
    if any(LEGACY_MARKER in n.value.lower() for n in text_needles):
        probes.append(LEGACY_MARKER.encode())
    t0 = time.perf_counter()
    wal = None
    # the -wal first: which pages it holds newer versions of says what the database's copy is
    for part, suffix in sorted(PARTS, key=lambda p: p[0] != "-wal"):
        file = Path(str(path) + suffix)
        try:
            with open(file, "rb") as fh:
                layout = _Layout.read(fh, part, wal)
                if part == "-wal":
                    wal = layout
                offsets = list(_occurrences(fh, probes))
                size = fh.seek(0, os.SEEK_END)
                result.files.append((part, str(file), size))
                seen: set[tuple[str, str, str, int]] = set()
                for at, utf16 in offsets:
                    for residue in _decode(fh, at, utf16, matchers, store.name, str(file), part, layout):
                        key = (residue.subject_id, residue.field, residue.form, residue.offset)
                        if residue.subject_id and key not in seen:
                            seen.add(key)
                            result.found.append(residue)
                        elif not residue.subject_id:
                            result.others += 1
        except FileNotFoundError:
            if part == "database":
                result.not_scanned = f"its database file {path} disappeared while being read"
                return result
        except OSError as e:
            result.not_scanned = f"{file} cannot be read: {e.strerror or e}"
            return result
    result.seconds = time.perf_counter() - t0
    return result


def _occurrences(fh, probes: Iterable[bytes]) -> Iterable[tuple[int, bool]]:
    """(offset, is UTF-16) of every probe in the file, in any letter case: one read of the file,
    each chunk lower-cased once and searched with bytes.find (memchr-speed)."""
    patterns = [(p.lower(), False) for p in probes] + [(utf16_bytes(p.decode()).lower(), True) for p in probes]
    # A match is never found twice: the overlap is shorter than any pattern.
    overlap = max(len(p) for p, _ in patterns) - 1
    fh.seek(0)
    base, tail = 0, b""
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            return
        buf = (tail + chunk).lower()
        for pattern, utf16 in patterns:
            at = buf.find(pattern)
            while at >= 0:
                yield base + at, utf16
                at = buf.find(pattern, at + 1)
        base += len(buf) - overlap
        tail = buf[-overlap:] if overlap else b""


@dataclass
class _Layout:
    """What a file's header says about where its pages are."""

    part: str
    page_size: int = 0
    free_pages: frozenset[int] = frozenset()
    salts: bytes = b""
    # -wal: frame index -> (page, whether a later frame of the current log holds the same page);
    # database: the pages the current log holds a newer version of
    frames: dict[int, tuple[int, bool]] = field(default_factory=dict)
    logged_pages: frozenset[int] = frozenset()

    @classmethod
    def read(cls, fh, part: str, wal: _Layout | None = None) -> _Layout:
        head = fh.read(100)
        out = cls(part)
        if part == "database" and head.startswith(b"SQLite format 3\0"):
            size = struct.unpack(">H", head[16:18])[0]
            out.page_size = 65536 if size == 1 else size
            out.free_pages = frozenset(_freelist(fh, out.page_size, struct.unpack(">I", head[32:36])[0]))
            if wal is not None:
                out.logged_pages = frozenset(page for page, _ in wal.frames.values())
        elif part == "-wal" and len(head) >= _WAL_HEADER and head[:4] in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83"):
            out.page_size = struct.unpack(">I", head[8:12])[0]
            out.salts = head[16:24]
            out.frames = _current_frames(fh, out.page_size, out.salts)
        return out

    def describe(self, fh, offset: int) -> str:
        if self.part == "database" and self.page_size:
            page = offset // self.page_size + 1
            if page in self.free_pages:
                return f"page {page} (a free page)"
            if page in self.logged_pages:
                return f"page {page} (the -wal holds versions of this page too)"
            return f"page {page} (free space in a page in use)"
        if self.part == "-wal" and self.page_size and offset >= _WAL_HEADER:
            frame = (offset - _WAL_HEADER) // (_WAL_FRAME_HEADER + self.page_size)
            if frame not in self.frames:
                return (f"frame {frame + 1} (left from an earlier log: no longer part of the database; "
                        "overwritten only as the log is reused)")
            page, superseded = self.frames[frame]
            if superseded:
                return (f"frame {frame + 1} (page {page}; an older version that a later frame replaces; "
                        "kept until the log is reused)")
            return f"frame {frame + 1} (page {page}; the page's latest version in the log)"
        return f"byte {offset}"


def _current_frames(fh, page_size: int, salts: bytes) -> dict[int, tuple[int, bool]]:
    """The frames of the current log (their salts match the header's), each with its page and
    whether a later frame holds the same page. Checksums are not verified: a torn last frame is
    still where its bytes are."""
    size = _WAL_FRAME_HEADER + page_size
    frames: dict[int, int] = {}
    index = 0
    while True:
        fh.seek(_WAL_HEADER + index * size)
        header = fh.read(_WAL_FRAME_HEADER)
        if len(header) < _WAL_FRAME_HEADER or header[8:16] != salts:
            break
        frames[index] = struct.unpack(">I", header[:4])[0]
        index += 1
    last = {page: i for i, page in frames.items()}
    return {i: (page, last[page] != i) for i, page in frames.items()}


def _freelist(fh, page_size: int, trunk: int) -> set[int]:
    """The free pages the database header's freelist names (trunk pages and their leaves)."""
    pages: set[int] = set()
    while trunk and trunk not in pages and len(pages) < 10_000_000:
        pages.add(trunk)
        fh.seek((trunk - 1) * page_size)
        data = fh.read(page_size)
        if len(data) < 8:
            break
        following, count = struct.unpack(">II", data[:8])
        count = min(count, (len(data) - 8) // 4)
        pages.update(struct.unpack(f">{count}I", data[8:8 + 4 * count]))
        trunk = following
    return pages


class _Matchers:
    """Matchers over the needles of one subject at a time (a window holds a whole page of other
    subjects' canaries, and a Matcher's cost grows with its base64 renderings), and over all of
    them for an occurrence whose canary cannot be read off the bytes."""

    def __init__(self, needles: list[Needle]):
        self.needles = needles
        self.by_key: dict[str, set[str]] = {}
        for n in canary_needles("", (n.value for n in needles)):
            self.by_key.setdefault(token_key(n.value), set())
        for n in needles:
            for c in canary_needles(n.subject_id, [n.value]):
                self.by_key.setdefault(token_key(c.value), set()).add(n.subject_id)
        self._cache: dict[frozenset[str], Matcher] = {}

    def known(self, key: str) -> bool:
        return key in self.by_key

    def of(self, key: str | None) -> Matcher:
        subjects = frozenset(self.by_key.get(key, ())) if key is not None else frozenset()
        if subjects not in self._cache:
            chosen = [n for n in self.needles if n.subject_id in subjects] if subjects else self.needles
            self._cache[subjects] = Matcher(chosen, TEXT_FORMS)
        return self._cache[subjects]


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]+")


def _base64_key(text: str, pos: int) -> str | None:
    """The key of the canary whose base64 rendering holds the literal at ``text[pos]``, when the
    run of base64 around it decodes to one (at one of the four alignments); else None."""
    for m in _BASE64_RUN.finditer(text, max(0, pos - 3 * _TOKEN_BYTES), min(len(text), pos + 3 * _TOKEN_BYTES)):
        if not m.start() <= pos < m.end():
            continue
        run = m.group().replace("-", "+").replace("_", "/")
        for lead in range(4):
            piece = run[lead:]
            piece = piece[: len(piece) - len(piece) % 4]
            try:
                data = base64.b64decode(piece, validate=True)
            except ValueError:
                continue
            near = (pos - m.start() - lead) * 3 // 4
            at = data.find(MARKER.encode(), max(0, near - 4))
            if 0 <= at <= near + 4:
                token = _WRITTEN.match(data[at:at + _TOKEN_BYTES].decode("ascii", errors="replace"))
                if token is not None:
                    return token_key(token.group())
    return None


def _decode(fh, at: int, utf16: bool, matchers: _Matchers, store: str, path: str, part: str,
            layout: _Layout) -> list[Residue]:
    """Whose canary is at byte ``at``, and in which field where the subject's whole value is
    there too; a Residue with no subject when it is none of the needles'."""
    fh.seek(at)
    head = fh.read(2 * _TOKEN_BYTES)
    head = head[::2] if utf16 else head
    token = _WRITTEN.match(head.decode("ascii", errors="replace").lower())
    key = token_key(token.group()) if token is not None else None
    if key is not None and not matchers.known(key):
        # Another subject's canary as written (a database holds a whole run's subjects): nothing
        # to decode. Only the full form: base64 text often reads as a short canary, never as the
        # marker's run of 4s (tests/test_storage_residue.py), so no rendering of ours is skipped.
        return [Residue(store, path, part, at, "", "", "", "", "")]
    start = max(0, at - CONTEXT)
    fh.seek(start)
    window = fh.read(at - start + CONTEXT)
    rel = at - start
    if utf16:
        parity = rel % 2
        piece = window[parity:]
        text = (piece + b"\0" * (len(piece) % 2)).decode("utf-16-le", errors="replace")
        pos = (rel - parity) // 2
    else:
        text = window.decode("utf-8", errors="replace")
        pos = len(window[:rel].decode("utf-8", errors="replace"))
        if text[pos:pos + len(LITERAL)].lower() not in (LITERAL, LEGACY_MARKER[:len(LITERAL)]):
            # the prefix ended inside a multi-byte character, decoded differently alone
            pos = max(text.lower().find(LITERAL, max(0, pos - 4)), 0)
    if key is None:
        key = _base64_key(text, pos)
        if key is not None and not matchers.known(key):
            return [Residue(store, path, part, at, "", "", "", "", "")]
    # a key read off the bytes picks its subject's needles; an unreadable one, everyone's
    covering = [m for m in matchers.of(key).find(text) if m.start <= pos < m.end]
    where = layout.describe(fh, at)
    if not covering:
        return [Residue(store, path, part, at, where, "", "", "", "")]
    return [Residue(store, path, part, at, where, m.needle.subject_id, m.needle.field, m.form,
                    excerpt(text, m.start, m.end)) for m in covering]
