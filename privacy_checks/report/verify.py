"""`privacy-checks verify REPORTS_DIR`: is this the report a run wrote, byte for byte?

An auditor who receives a reports directory (a CI artifact, a zip by mail) checks it against
two things the directory cannot forge by itself: the manifest's digest, printed in the run's
log, and the Ed25519 signature over the manifest, checked with a public key obtained from the
run's operator (printed in the run's log as `public key=…`). The manifest then vouches for
every file it lists: each digest is recomputed, and a file that is missing, changed or present
without being listed is named.

Exit status: 0 every listed file matches, nothing unlisted is there, and the signature verifies
when a key was given; 1 something differs; 2 the directory cannot be verified at all (no
manifest, a manifest that is not one, an unreadable key).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PrivacyChecksError
from .compliance import MANIFEST, SIGNATURE, sha256_file

# Written into the reports directory after the manifest, from files it lists, or kept between
# runs on purpose: never part of a run's record, so never "not listed".
NOT_COVERED = ("allure-report/", "allure-history.jsonl", "allure-results/history/")


class VerifyUsageError(PrivacyChecksError):
    """The directory or the key cannot be read: nothing could be verified."""


@dataclass
class Difference:
    path: str
    kind: str  # "missing", "changed", "not listed"
    expected: str | None = None
    actual: str | None = None

    def line(self) -> str:
        if self.kind == "changed":
            return f"CHANGED     {self.path}: manifest sha256 {self.expected}, file now {self.actual}"
        if self.kind == "missing":
            return f"MISSING     {self.path}: listed in the manifest (sha256 {self.expected}), not in the directory"
        return f"NOT LISTED  {self.path}: in the directory but not in the manifest (sha256 {self.actual})"


@dataclass
class Verification:
    manifest: Path
    manifest_sha256: str
    run: dict
    listed: int
    differences: list[Difference] = field(default_factory=list)
    signature: str = "absent"  # "absent", "unchecked", "valid", "invalid"
    signature_detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.differences and self.signature in ("absent", "unchecked", "valid")


def _listed_path(base: Path, rel: str) -> Path:
    path = Path(rel)
    return path if path.is_absolute() else base / path


def load_manifest(reports: Path) -> tuple[Path, dict]:
    """The manifest of a reports directory (or the manifest file itself), read and checked for shape."""
    manifest = reports if reports.is_file() else reports / MANIFEST
    if not reports.exists():
        raise VerifyUsageError(f"{reports}: no such directory")
    if not manifest.is_file():
        raise VerifyUsageError(f"{manifest}: no manifest here; a run that wrote reports writes {MANIFEST} beside "
                               "them (is this the --privacy-reports directory?)")
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerifyUsageError(f"{manifest}: cannot be read as JSON ({exc})") from None
    files = data.get("files") if isinstance(data, dict) else None
    if (not isinstance(files, list) or data.get("algorithm") != "sha256"
            or not all(isinstance(f, dict) and isinstance(f.get("path"), str) and isinstance(f.get("sha256"), str)
                       for f in files)):
        raise VerifyUsageError(f"{manifest}: not a privacy-checks manifest (expected \"algorithm\": \"sha256\" and "
                               "\"files\": [{\"path\", \"sha256\"}, …])")
    return manifest, data


def compare_files(base: Path, data: dict) -> list[Difference]:
    """Each listed file that is missing or whose digest differs, in the manifest's order."""
    out = []
    for entry in data["files"]:
        path = _listed_path(base, entry["path"])
        if not path.is_file():
            out.append(Difference(entry["path"], "missing", expected=entry["sha256"]))
            continue
        try:
            actual = sha256_file(path)
        except OSError as exc:
            out.append(Difference(entry["path"], "changed", expected=entry["sha256"], actual=f"unreadable ({exc})"))
            continue
        if actual != entry["sha256"]:
            out.append(Difference(entry["path"], "changed", expected=entry["sha256"], actual=actual))
    return out


def unlisted_files(base: Path, data: dict) -> list[Difference]:
    """Files under the reports directory the manifest does not list (its own files and the
    derived outputs of NOT_COVERED aside): a planted evidence file is named, not ignored."""
    listed = {Path(f["path"]).as_posix() for f in data["files"]}
    listed |= {_listed_path(base, f["path"]).resolve().as_posix() for f in data["files"]}
    out = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        if rel in (MANIFEST, SIGNATURE) or any(rel == n or rel.startswith(n) for n in NOT_COVERED):
            continue
        if path.name == ".gitkeep" and path.stat().st_size == 0:
            continue  # the empty placeholder a repository keeps its reports/ directory with
        if rel not in listed and path.resolve().as_posix() not in listed:
            try:
                digest = sha256_file(path)
            except OSError as exc:
                digest = f"unreadable ({exc})"
            out.append(Difference(rel, "not listed", actual=digest))
    return out


def load_public_key(key: str):
    """An Ed25519 public key from a PEM file, a file holding the base64 raw key, or the base64
    raw key itself (as the run's terminal prints it after `public key=`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(key)
    try:
        is_file = path.is_file()
    except OSError:  # a base64 key longer than a file name may be
        is_file = False
    if is_file:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise VerifyUsageError(f"{path}: cannot read the public key ({exc})") from None
        source = str(path)
    else:
        raw, source = key.encode(), "--public-key"
    if b"-----BEGIN" in raw:
        try:
            loaded = serialization.load_pem_public_key(raw)
        except ValueError as exc:
            hint = " (that is a private key: give its public half)" if b"PRIVATE KEY" in raw else ""
            raise VerifyUsageError(f"{source}: not a PEM public key{hint} ({exc})") from None
        if not isinstance(loaded, Ed25519PublicKey):
            raise VerifyUsageError(f"{source}: an Ed25519 public key is needed, not {type(loaded).__name__}")
        return loaded
    try:
        decoded = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) != 32:
        what = "neither a readable file nor" if not is_file else "not"
        raise VerifyUsageError(f"{source}: {what} an Ed25519 public key (a PEM file, or the 32-byte key in base64 "
                               "as the run prints it after 'public key=')")
    return Ed25519PublicKey.from_public_bytes(decoded)


def check_signature(manifest: Path, public_key) -> tuple[str, str]:
    """(state, what to say) for the manifest's signature; the key may be None."""
    from cryptography.exceptions import InvalidSignature

    signature = manifest.with_name(SIGNATURE)
    if not signature.is_file():
        if public_key is None:
            return "absent", (f"not signed: there is no {SIGNATURE}, so only the digests were checked; compare the "
                              "manifest's sha256 above with the one the run printed in its log")
        return "invalid", (f"{signature}: missing: the manifest is not signed, so it cannot be checked against "
                           "the public key given")
    if public_key is None:
        return "unchecked", (f"{signature} is there but was NOT checked: no --public-key given (the run prints "
                             "its key after 'public key=')")
    try:
        raw = base64.b64decode(signature.read_bytes().strip(), validate=True)
        public_key.verify(raw, manifest.read_bytes())
    except (binascii.Error, ValueError):
        return "invalid", f"{signature}: not a base64 Ed25519 signature"
    except InvalidSignature:
        return "invalid", (f"{signature}: does NOT verify with the public key given: {MANIFEST} changed after it "
                           "was signed, or another key signed it")
    except OSError as exc:
        return "invalid", f"{signature}: cannot be read ({exc})"
    return "valid", f"{signature}: valid Ed25519 signature over {MANIFEST} with the public key given"


def verify_reports(reports: Path, public_key: str | None = None) -> Verification:
    """Check a reports directory against its manifest (and signature). Raises VerifyUsageError
    when it cannot be checked at all."""
    key = load_public_key(public_key) if public_key else None
    manifest, data = load_manifest(Path(reports))
    base = manifest.parent
    result = Verification(manifest, sha256_file(manifest), data.get("run") or {}, len(data["files"]))
    result.differences = compare_files(base, data) + unlisted_files(base, data)
    result.signature, result.signature_detail = check_signature(manifest, key)
    return result


def describe_run(run: dict) -> str:
    target = run.get("target") or {}
    parts = [f"run started {run.get('started_at') or '?'}"]
    if target.get("name"):
        parts.append(f"target {target['name']}" + (f" ({target['base_url']})" if target.get("base_url") else ""))
    if run.get("command"):
        parts.append(f"command: {run['command']}")
    return ", ".join(parts)


def lines(result: Verification) -> list[str]:
    out = [f"manifest: {result.manifest} sha256={result.manifest_sha256}", describe_run(result.run)]
    out += [d.line() for d in result.differences]
    out.append(result.signature_detail)
    if result.ok:
        out.append(f"OK: all {result.listed} listed files match their digests, nothing unlisted"
                   + (", signature valid" if result.signature == "valid" else ""))
    else:
        kinds = [(k, sum(1 for d in result.differences if d.kind == k)) for k in ("changed", "missing", "not listed")]
        counts = [f"{n} {k}" for k, n in kinds if n]
        if result.signature == "invalid":
            counts.append("signature not valid")
        out.append(f"FAILED: {', '.join(counts)} (of {result.listed} listed files)")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", metavar="REPORTS_DIR", help="the run's reports directory (holding manifest.json)")
    parser.add_argument("--public-key", metavar="KEY", default=None,
                        help="check manifest.sig with this Ed25519 public key: a PEM file, or the base64 key the "
                             "run printed after 'public key='")


def main_verify(args: argparse.Namespace) -> int:
    try:
        result = verify_reports(Path(args.reports), args.public_key)
    except VerifyUsageError as exc:
        print(f"privacy-checks verify: {exc}", file=sys.stderr)
        return 2
    for line in lines(result):
        print(line)
    return 0 if result.ok else 1
