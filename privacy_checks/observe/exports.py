"""Exports: obtain what a target hands a subject who asks for their data, and read it strictly.

An export is obtained the way the profile's `export` section says — the body of the export
operation's last response, a link to follow, or files a command step wrote — and then read
without guessing: JSON, JSON Lines, CSV and XML are parsed strictly (a truncated document is
a finding, not something to repair); zip archives and directories of these are opened part by
part. HTML, PDF and plain text are kept as text, so a canary can still be found in them, but
they are not machine-readable (GDPR Art. 20(1); Cal. Civ. Code §1798.130(a)(3)(B)(iii)).

Downloads go through `Target.request`, so the host allow-list applies to the link and to
every redirect, and credentials only ever reach the host they were configured for. Bodies
are streamed with a cap, and archives are capped on file count and on the bytes actually
unpacked (declared sizes in a zip can lie), so a hostile or broken export cannot exhaust
memory or hang the run.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from ..errors import PrivacyChecksError
from .forms import Match, Needle, match_text

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_UNPACKED_BYTES = 1024 * 1024 * 1024
DEFAULT_MAX_FILES = 1000
# fixtures/schemas/ in a checkout; the wheel ships the same file inside the package
DEFAULT_SCHEMA = next((p for p in (Path(__file__).resolve().parents[2] / "fixtures" / "schemas" / "export.default.json",
                                   Path(__file__).resolve().parents[1] / "schemas" / "export.default.json")
                       if p.exists()), Path(__file__).resolve().parents[1] / "schemas" / "export.default.json")
MACHINE_READABLE = frozenset({"json", "jsonl", "csv", "xml"})
_MAX_NESTING = 2
_EVIDENCE_BODY = 2048
_NEUTRAL_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
_DECLARED = {
    "application/json": "json", "text/json": "json",
    "application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/x-jsonlines": "jsonl",
    "application/ndjson": "jsonl",
    "text/csv": "csv", "application/csv": "csv",
    "application/xml": "xml", "text/xml": "xml",
    "text/html": "html", "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "text/plain": "text",
    "application/zip": "zip", "application/x-zip-compressed": "zip",
}
_EXTENSIONS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".xml": "xml",
               ".html": "html", ".htm": "html", ".pdf": "pdf", ".txt": "text", ".zip": "zip"}


class ExportError(PrivacyChecksError):
    """The export could not be obtained or opened safely (refused host, over a cap, download failed)."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    max_files: int = DEFAULT_MAX_FILES
    timeout: float = 120.0

    @classmethod
    def from_profile(cls, profile) -> Limits:
        spec = _spec(profile)
        return cls(max_bytes=int(spec.get("max_bytes", DEFAULT_MAX_BYTES)),
                   max_unpacked_bytes=int(spec.get("max_unpacked_bytes", DEFAULT_MAX_UNPACKED_BYTES)),
                   max_files=int(spec.get("max_files", DEFAULT_MAX_FILES)),
                   timeout=float(profile.timeouts.get("operation", 120)))


@dataclass
class Part:
    """One document of an export: the whole body, or one file of an archive or directory."""

    name: str
    format: str  # json | jsonl | csv | xml | html | pdf | text | binary | empty
    size: int
    text: str = ""
    data: Any = None
    problem: str | None = None

    @property
    def machine_readable(self) -> bool:
        return self.format in MACHINE_READABLE and self.problem is None


@dataclass
class Export:
    source: str
    status: int | None = None
    content_type: str = ""
    size: int = 0
    parts: list[Part] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the container's own (corrupt zip, wrong type)
    # an export made of several responses (`export_part`): each one, judged on its own for
    # machine-readability; `parts` holds all of theirs, judged together for completeness
    pieces: dict[str, Export] = field(default_factory=dict)

    @property
    def formats(self) -> list[str]:
        return sorted({p.format for p in self.parts})

    @property
    def machine_readable(self) -> bool:
        return bool(self.parts) and not self.problems and any(p.machine_readable for p in self.parts)

    def format_problems(self) -> list[str]:
        out = list(self.problems)
        for p in self.parts:
            if p.problem:
                out.append(f"{p.name}: {p.problem}")
            elif p.format not in MACHINE_READABLE:
                out.append(f"{p.name}: {p.format.upper()} is not a machine-readable format")
        return out

    def document(self) -> Any:
        """The parsed content: one part's data, or {part name: data} for archives and directories."""
        readable = [p for p in self.parts if p.machine_readable]
        if len(self.parts) == 1 and readable:
            return readable[0].data
        return {p.name: p.data for p in readable}

    def text(self) -> str:
        return "\n".join(p.text for p in self.parts)

    def find(self, needles: list[Needle], *, structured: bool = False) -> list[tuple[str, Match]]:
        """(part name, match) for every needle form found; `structured` searches parsed values only."""
        out = []
        for p in self.parts:
            if structured and not p.machine_readable:
                continue
            text = "\n".join(_strings(p.data)) if structured else p.text
            out += [(p.name, m) for m in match_text(text, needles)]
        return out

    def locate(self, value: str) -> list[str]:
        """Where in the parsed export a value appears: `part: path.to[3].key` for each place."""
        out = []
        for p in self.parts:
            if p.machine_readable:
                out += [f"{p.name}: {path or '(the whole document)'}" for path in _paths(p.data, value)]
            elif value in p.text:
                out.append(f"{p.name} (as text)")
        return out

    def describe(self) -> str:
        return (f"{self.source} ({self.content_type or 'no content type'}, {self.size} bytes, "
                f"{len(self.parts)} part(s): {', '.join(self.formats) or 'none'})")


# -- reading ---------------------------------------------------------------------------------

def parse_bytes(body: bytes, *, name: str, content_type: str | None = None, limits: Limits | None = None,
                _depth: int = 0, _budget: list[int] | None = None) -> Export:
    limits = limits or Limits()
    budget = _budget if _budget is not None else [limits.max_unpacked_bytes, limits.max_files]
    declared = _declared(content_type)
    export = Export(source=name, content_type=(content_type or "").split(";")[0].strip(), size=len(body))
    kind = _sniff(body)
    if kind == "zip" or (declared == "zip" and kind is None):
        export.parts += _unzip(body, name, limits, budget, _depth, export.problems)
        if declared not in (None, "zip"):
            export.problems.append(f"{name}: served as {export.content_type} but the body is a zip archive")
        return export
    hint = declared if declared not in (None, "other") else _EXTENSIONS.get(Path(name).suffix.lower())
    part = _part(body, name, hint)
    if declared and part.format != "empty" and not _compatible(declared, part.format):
        export.problems.append(f"{name}: served as {export.content_type} but the body is "
                               f"{part.format.upper()}")
    export.parts.append(part)
    return export


def load_path(path: str | os.PathLike[str], limits: Limits | None = None) -> Export:
    """An export a command step wrote: one file, or a directory of them (symlinks not followed)."""
    limits = limits or Limits()
    root = Path(path)
    if not root.exists():
        raise ExportError(f"export path {root} does not exist (did the command step write it?)")
    if root.is_file():
        body = _read_file(root, limits.max_bytes)
        return parse_bytes(body, name=str(root), limits=limits)
    export = Export(source=str(root))
    budget = [limits.max_unpacked_bytes, limits.max_files]
    for current, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for fname in sorted(files):
            fpath = Path(current) / fname
            if fpath.is_symlink():
                export.problems.append(f"{fpath}: a symbolic link, not followed")
                continue
            budget[1] -= 1
            if budget[1] < 0:
                raise ExportError(f"export directory {root} holds more than {limits.max_files} files "
                                  "(max_files); refusing to read it")
            body = _read_file(fpath, min(limits.max_bytes, max(budget[0], 0)))
            budget[0] -= len(body)
            export.size += len(body)
            sub = parse_bytes(body, name=str(fpath.relative_to(root)), limits=limits, _budget=budget)
            export.parts += sub.parts
            export.problems += sub.problems
    if not export.parts and not export.problems:
        export.problems.append(f"{root}: the export directory is empty")
    return export


def _read_file(path: Path, cap: int) -> bytes:
    size = path.stat().st_size
    if size > cap:
        raise ExportError(f"export file {path} is {size} bytes, over the cap of {cap} bytes")
    with open(path, "rb") as fh:
        return fh.read(cap + 1)[:cap]


def _unzip(body: bytes, name: str, limits: Limits, budget: list[int], depth: int,
           problems: list[str]) -> list[Part]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        members = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        problems.append(f"{name}: corrupt zip archive ({exc})")
        return []
    budget[1] -= len(members)
    if budget[1] < 0:
        raise ExportError(f"{name}: the archive holds more than {limits.max_files} files (max_files); "
                          "refusing to unpack it (zip bomb?)")
    declared_total = sum(i.file_size for i in members)
    if declared_total > budget[0]:
        raise ExportError(f"{name}: the archive unpacks to {declared_total} bytes, over the cap of "
                          f"{limits.max_unpacked_bytes} bytes (max_unpacked_bytes; zip bomb?)")
    parts: list[Part] = []
    for info in members:
        member = f"{name}!{info.filename}"
        if info.flag_bits & 0x1:
            problems.append(f"{member}: encrypted, cannot be read")
            continue
        try:
            data = _read_member(archive, info, budget, limits, member)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
            problems.append(f"{member}: corrupt zip member ({exc})")
            continue
        if _sniff(data) == "zip":
            if depth + 1 >= _MAX_NESTING:
                raise ExportError(f"{member}: archives nested more than {_MAX_NESTING} deep; refusing to unpack")
            inner = parse_bytes(data, name=member, limits=limits, _depth=depth + 1, _budget=budget)
            parts += inner.parts
            problems += inner.problems
        else:
            parts.append(_part(data, member, _EXTENSIONS.get(Path(info.filename).suffix.lower())))
    if not members:
        problems.append(f"{name}: the zip archive is empty")
    return parts


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: list[int], limits: Limits,
                 member: str) -> bytes:
    # Count what actually comes out: a member's declared size is whatever the archive says.
    out = bytearray()
    with archive.open(info) as fh:
        while chunk := fh.read(1 << 16):
            out += chunk
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ExportError(f"{member}: unpacking went over the cap of {limits.max_unpacked_bytes} bytes "
                                  "(max_unpacked_bytes; zip bomb?)")
    return bytes(out)


def _declared(content_type: str | None) -> str | None:
    base = (content_type or "").split(";")[0].strip().lower()
    if base in _NEUTRAL_TYPES:
        return None
    if base in _DECLARED:
        return _DECLARED[base]
    if base.endswith("+json"):
        return "json"
    if base.endswith("+xml"):
        return "xml"
    return "other"


def _compatible(declared: str, found: str) -> bool:
    # an unknown declared type is not judged; JSON Lines of one record is also a JSON document
    return declared in (found, "other") or {declared, found} == {"json", "jsonl"}


def _sniff(body: bytes) -> str | None:
    if body[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if body[:5] == b"%PDF-":
        return "pdf"
    return None


def _part(body: bytes, name: str, hint: str | None) -> Part:
    part = Part(name=name, format="binary", size=len(body))
    if not body.strip():
        part.format = "empty"
        part.problem = "empty"
        return part
    if _sniff(body) == "pdf":
        part.format = "pdf"
        part.text = body.decode("latin-1")
        return part
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        part.text = body.decode("latin-1")
        part.problem = f"not UTF-8 text (byte {exc.start})"
        return part
    part.text = text
    head = text.lstrip()[:200].lower()
    if hint == "html" or head.startswith(("<!doctype html", "<html")):
        part.format = "html"
        part.text = html.unescape(text)
    elif hint in ("json", "jsonl") or head[:1] in ("{", "["):
        _parse_json(part, text, hint)
    elif hint == "xml" or head.startswith("<"):
        _parse_xml(part, text)
    elif hint == "csv":
        _parse_csv(part, text)
    else:
        part.format = "text"
    return part


def _strict_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(part: Part, text: str, hint: str | None) -> None:
    part.format = "jsonl" if hint == "jsonl" else "json"
    if hint != "jsonl":
        try:
            part.data = json.loads(text, parse_constant=_strict_constant)
            return
        except json.JSONDecodeError as exc:
            if not (exc.msg == "Extra data" and hint is None):
                part.problem = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                return
        except ValueError as exc:
            part.problem = f"not valid JSON: {exc}"
            return
        except RecursionError:
            part.problem = "not valid JSON: nested too deeply"
            return
    part.format = "jsonl"
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line, parse_constant=_strict_constant))
        except (ValueError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            part.problem = f"not valid JSON Lines: line {lineno}: {msg}"
            return
    part.data = rows


def _parse_csv(part: Part, text: str) -> None:
    part.format = "csv"
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        part.problem = f"not valid CSV: {exc}"
        return
    rows = [r for r in rows if r]
    if not rows:
        part.problem = "not valid CSV: no header row"
        return
    header = rows[0]
    for lineno, row in enumerate(rows[1:], 2):
        if len(row) != len(header):
            part.problem = f"not valid CSV: row {lineno} has {len(row)} fields, the header has {len(header)}"
            return
    part.data = [dict(zip(header, row, strict=True)) for row in rows[1:]]


def _parse_xml(part: Part, text: str) -> None:
    import xml.etree.ElementTree as ET

    part.format = "xml"
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        # entity definitions are how XML bombs and external-entity reads work; an export needs none
        part.problem = "XML with a DOCTYPE/ENTITY declaration is refused"
        return
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        part.problem = f"not valid XML: {exc}"
        return
    part.data = {root.tag: _xml_value(root)}


def _xml_value(el) -> Any:
    children = list(el)
    if not children and not el.attrib:
        return (el.text or "").strip()
    out: dict[str, Any] = {f"@{k}": v for k, v in el.attrib.items()}
    for child in children:
        out.setdefault(child.tag, []).append(_xml_value(child))
    text = (el.text or "").strip()
    if text:
        out["#text"] = text
    return out


def _paths(data: Any, value: str, path: str = "") -> list[str]:
    """Dotted paths (lists as [i]) of the values in `data` that hold `value`."""
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _paths(v, value, f"{path}.{k}" if path else str(k))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _paths(v, value, f"{path}[{i}]")]
    return [path] if data is not None and value in str(data) else []


def _strings(data: Any) -> list[str]:
    out: list[str] = []
    stack = [data]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            out += [str(k) for k in cur]
            stack += list(cur.values())
        elif isinstance(cur, list):
            stack += cur
        elif cur is not None:
            out.append(str(cur))
    return out


# -- validation ------------------------------------------------------------------------------

def schema_path(profile) -> Path:
    named = _spec(profile).get("schema")
    return profile.resolve(named) if named else DEFAULT_SCHEMA


def validate(export: Export, path: Path) -> list[str]:
    """Schema violations of the export's parsed document, each naming where in it."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        schema = json.loads(Path(path).read_text())
        Draft202012Validator.check_schema(schema)
    except OSError as exc:
        raise ExportError(f"export schema {path} cannot be read: {exc.strerror}") from None
    except ValueError as exc:
        raise ExportError(f"export schema {path} is not valid JSON: {exc}") from None
    except SchemaError as exc:
        raise ExportError(f"export schema {path} is not a valid JSON Schema: {exc.message}") from None
    errors = sorted(Draft202012Validator(schema).iter_errors(export.document()), key=lambda e: list(e.path))
    return [f"at /{'/'.join(str(p) for p in e.path)}: {e.message[:200]}" for e in errors[:20]]


# -- obtaining -------------------------------------------------------------------------------

def _spec(profile) -> dict:
    return dict(profile.data.get("export") or {})


def renditions(profile) -> dict[str, str]:
    """Name -> link template of every rendition the profile declares (the first is the primary)."""
    spec = _spec(profile)
    out = {}
    if spec.get("link"):
        out["primary"] = spec["link"]
    out.update(spec.get("renditions") or {})
    return out


def obtain(target, subject, captured: dict | None = None, *, rendition: str | None = None,
           result=None, auth: str | None = None) -> Export:
    """The export as the profile delivers it, after the export operation ran (its result given)."""
    profile = target.profile
    spec = _spec(profile)
    limits = Limits.from_profile(profile)
    captured = subject.captured if captured is None else captured
    delivery = spec.get("delivery", "link")
    ctx = {"subject": subject.template_context(), "captured": captured, "params": {}}
    if delivery == "response" and rendition is None:
        if result is None:
            raise ExportError("export.delivery is 'response' but no operation result was given")
        parts = getattr(result, "parts", None) or {}
        if not parts:
            return _from_response(result.last, result.last.url or "response", limits)
        export = Export(source=f"the export operation's parts {', '.join(parts)}")
        for name, step in parts.items():
            piece = _from_response(step, name, limits)
            export.pieces[name] = piece
            export.parts += piece.parts
            export.problems += piece.problems
            export.size += piece.size
            if export.size > limits.max_bytes:
                raise ExportError(f"the export's parts are over the cap of {limits.max_bytes} bytes together "
                                  "(export.max_bytes)")
        statuses = {p.status for p in export.pieces.values()}
        export.status = statuses.pop() if len(statuses) == 1 else None
        return export
    if delivery == "files" and rendition is None:
        if not spec.get("files"):
            raise ExportError(f"{profile.name}: export.delivery is 'files' but export.files (the path the "
                              "export operation writes) is not declared")
        return load_path(str(target.render(spec["files"], ctx)), limits)
    links = renditions(profile)
    if not links:
        raise ExportError(f"{profile.name}: export.link is not declared, so the export cannot be downloaded")
    template = links[rendition] if rendition else next(iter(links.values()))
    url = str(target.render(template, ctx, url_encode=False))
    export = download(target, url, subject=subject, captured=captured, auth=auth or spec.get("auth"),
                      limits=limits, where=f"export link {template}")
    if export.status is None or not 200 <= export.status < 300:
        raise ExportError(f"downloading the export from {export.source} answered {export.status}: "
                          f"{export.text()[:200]}")
    return export


def _from_response(step, name: str, limits: Limits) -> Export:
    """An export read from a step's result (its body, or a command's standard output)."""
    body = step.text.encode()
    ctype = next((v for k, v in step.headers.items() if k.lower() == "content-type"), None)
    if len(body) > limits.max_bytes:
        raise ExportError(f"the export in the result of {step.url or name} is {len(body)} bytes, over the cap of "
                          f"{limits.max_bytes} bytes (export.max_bytes)")
    export = parse_bytes(body, name=name, content_type=ctype, limits=limits)
    export.status = step.status
    return export


def download(target, url: str, *, subject=None, captured: dict | None = None, auth: str | None = None,
             limits: Limits | None = None, where: str = "export link") -> Export:
    """GET `url` (relative to the target's base URL) with a streamed size cap; any status is returned."""
    limits = limits or Limits()
    full = urljoin(target.base_url, url.lstrip("/")) if "://" not in url else url
    headers = target.auth_headers(auth, subject, captured or {}, where) if auth else {}
    deadline = time.monotonic() + limits.timeout
    holder: dict[str, Any] = {}

    def capped(resp, *_args, **_kwargs):
        length = resp.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limits.max_bytes:
            resp.close()
            raise ExportError(f"{where}: {resp.url} announces {length} bytes, over the cap of "
                              f"{limits.max_bytes} bytes (export.max_bytes)")
        buf = bytearray()
        for chunk in resp.iter_content(1 << 16):
            buf += chunk
            if len(buf) > limits.max_bytes:
                resp.close()
                raise ExportError(f"{where}: {resp.url} sent more than the cap of {limits.max_bytes} bytes "
                                  "(export.max_bytes); download stopped")
            if time.monotonic() > deadline:
                resp.close()
                raise ExportError(f"{where}: downloading {resp.url} took longer than {limits.timeout:.0f} s")
        holder["body"] = bytes(buf)
        holder["content_type"] = resp.headers.get("Content-Type")
        # Evidence keeps a few KB of each body and redacts it with regexes that are slow on long
        # binary runs; the export itself stays here, and the exchange records what it was.
        resp._content = holder["body"] if len(buf) <= _EVIDENCE_BODY else (
            f"[export body of {len(buf)} bytes ({holder['content_type'] or 'no content type'}), read by the "
            "export observer]").encode()
        resp._content_consumed = True
        return resp

    result = target.request("GET", full, headers=headers, where=where, stream=True,
                            hooks={"response": [capped]})
    body = holder["body"] if "body" in holder else result.text.encode()
    ctype = next((v for k, v in result.headers.items() if k.lower() == "content-type"), None)
    export = parse_bytes(body, name=result.url or full, content_type=ctype, limits=limits)
    export.status = result.status
    return export


__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_SCHEMA", "Export", "ExportError", "Limits", "MACHINE_READABLE", "Part",
           "download", "load_path", "obtain", "parse_bytes", "renditions", "schema_path", "validate"]
