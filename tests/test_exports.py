"""The export observer reads strictly and fails safely: real files, a real loopback server.

Each bad input gives one clear failure or error naming the problem — never a crash, never a
hang — and credentials never reach a host other than the one they were configured for.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from privacy_checks.errors import PrivacyChecksError
from privacy_checks.observe import exports as ex
from privacy_checks.observe.forms import Needle
from privacy_checks.profile import load_profile
from privacy_checks.target import Target

TOKEN = "export-test-token-7f3a"
GOOD = {"user": {"full_name": "Ada pcqzexport01", "email": "ada.pcqzexport01@example.com"}, "categories": ["A"]}


def _zip(files: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _bomb() -> bytes:
    # 64 MiB of zeros compresses to ~64 KiB: far over the test profile's unpacked cap
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("data.json", "w") as fh:
        chunk = b"0" * (1 << 20)
        for _ in range(64):
            fh.write(chunk)
    return buf.getvalue()


def _lying_bomb() -> bytes:
    """A member whose header claims 10 bytes but which inflates to 8 MiB."""
    data = bytearray(_zip({"x.json": b"1" * (8 << 20)}))
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = data.find(sig)
        data[pos + off:pos + off + 4] = (10).to_bytes(4, "little")
    return bytes(data)


CSV = b"id,full_name\n1,Ada pcqzexport01\n"
ROUTES: dict[str, tuple[int, str, bytes]] = {
    "/good.json": (200, "application/json", json.dumps(GOOD).encode()),
    "/good.zip": (200, "application/zip", _zip({"users.csv": CSV, "user.json": json.dumps(GOOD).encode()})),
    "/good.jsonl": (200, "application/x-ndjson", b'{"a": "Ada pcqzexport01"}\n{"b": 2}\n'),
    "/good.xml": (200, "application/xml", b"<export><user name='x'>Ada pcqzexport01</user></export>"),
    "/truncated.json": (200, "application/json", json.dumps(GOOD).encode()[:-7]),
    "/corrupt.zip": (200, "application/zip", b"PK\x03\x04" + b"\x00garbage" * 40),
    "/html-as-json": (200, "application/json", b"<!DOCTYPE html><html><body>Ada pcqzexport01</body></html>"),
    "/page.html": (200, "text/html", b"<!DOCTYPE html><html><body>Ada pcqzexport01</body></html>"),
    "/json-as-text": (200, "text/plain", json.dumps(GOOD).encode()),
    "/pdf": (200, "application/pdf", b"%PDF-1.4\n% Ada pcqzexport01\n"),
    "/ragged.csv": (200, "text/csv", b"id,full_name\n1,Ada,extra\n"),
    "/entity.xml": (200, "application/xml",
                    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'),
    "/bomb.zip": (200, "application/zip", _bomb()),
    "/lying-bomb.zip": (200, "application/zip", _lying_bomb()),
    "/many.zip": (200, "application/zip", _zip({f"f{i}.json": b"{}" for i in range(50)})),
    "/empty.json": (200, "application/json", b"{}"),
}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *_args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.path, dict(self.headers)))
        if self.path == "/huge":
            # announces nothing, then streams past any cap
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            try:
                for _ in range(4096):
                    self.wfile.write(b" " * 4096)
            except OSError:
                pass
            return
        if self.path == "/announced-huge":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            return
        if self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"{")
            self.wfile.flush()
            time.sleep(4)
            return
        if self.path.startswith("/redirect-to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/redirect-to/"):].replace("_", "/"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, ctype, body = ROUTES.get(self.path, (404, "application/json", b'{"error": "not found"}'))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(host: str = "127.0.0.1"):
    server = ThreadingHTTPServer((host, 0), _Handler)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def servers():
    main, other = _serve(), _serve()
    yield main, other
    for s in (main, other):
        s.shutdown()
        s.server_close()


@pytest.fixture
def target(servers, tmp_path):
    main, _ = servers
    path = tmp_path / "exports.yaml"
    path.write_text(f"""
name: exports-test
base_url: http://127.0.0.1:{main.server_address[1]}
allowed_hosts: [127.0.0.1, localhost]
auth:
  subject: {{type: bearer, token: "${{EXPORT_TEST_TOKEN}}"}}
timeouts: {{request: 1.5, operation: 10}}
export:
  link: /good.json
  auth: subject
  max_bytes: 2000000
  max_unpacked_bytes: 4000000
  max_files: 20
""")
    t = Target(load_profile(path, env={"EXPORT_TEST_TOKEN": TOKEN}))
    yield t
    t.close()


def _get(target, path: str) -> ex.Export:
    return ex.download(target, path, auth="subject", limits=ex.Limits.from_profile(target.profile))


NEEDLE = [Needle("s1", "full_name", "Ada pcqzexport01")]


@pytest.mark.parametrize(("path", "fmt"), [
    ("/good.json", ["json"]), ("/good.zip", ["csv", "json"]), ("/good.jsonl", ["jsonl"]), ("/good.xml", ["xml"]),
])
def test_machine_readable_exports_parse_and_their_values_are_searchable(target, path, fmt):
    export = _get(target, path)
    assert export.machine_readable, export.format_problems()
    assert export.formats == fmt
    assert export.find(NEEDLE, structured=True), export.describe()
    assert ex.validate(export, ex.DEFAULT_SCHEMA) == []


@pytest.mark.parametrize(("path", "problem"), [
    ("/truncated.json", "not valid JSON"),
    ("/corrupt.zip", "corrupt zip archive"),
    ("/html-as-json", "served as application/json but the body is HTML"),
    ("/json-as-text", "served as text/plain but the body is JSON"),
    ("/page.html", "HTML is not a machine-readable format"),
    ("/pdf", "PDF is not a machine-readable format"),
    ("/ragged.csv", "row 2 has 3 fields, the header has 2"),
    ("/entity.xml", "DOCTYPE/ENTITY declaration is refused"),
    # zipfile stops at the declared size and then fails the CRC: the lie is caught, not inflated
    ("/lying-bomb.zip", "corrupt zip member"),
])
def test_malformed_or_human_only_exports_are_not_machine_readable_and_say_why(target, path, problem):
    export = _get(target, path)
    assert not export.machine_readable
    assert any(problem in p for p in export.format_problems()), export.format_problems()


def test_text_of_a_human_only_export_is_still_searched_for_canaries(target):
    assert _get(target, "/page.html").find(NEEDLE)
    assert not _get(target, "/page.html").find(NEEDLE, structured=True)


@pytest.mark.parametrize(("path", "message"), [
    ("/huge", "sent more than the cap of 2000000 bytes"),
    ("/announced-huge", "announces 1000000000000 bytes, over the cap"),
    ("/bomb.zip", "over the cap of 4000000 bytes (max_unpacked_bytes; zip bomb?)"),
    ("/many.zip", "more than 20 files (max_files)"),
    ("/stall", "timed out"),
])
def test_oversized_bombs_and_stalls_are_refused_quickly_with_a_clear_error(target, path, message):
    started = time.monotonic()
    with pytest.raises(PrivacyChecksError) as info:
        _get(target, path)
    assert message in str(info.value), str(info.value)
    assert "Traceback" not in str(info.value)
    assert time.monotonic() - started < 8


def test_a_link_to_a_host_the_profile_does_not_allow_is_refused_and_gets_nothing(target, servers, tmp_path):
    main, other = servers
    path = tmp_path / "narrow.yaml"
    path.write_text(target.profile.path.read_text().replace("[127.0.0.1, localhost]", "[127.0.0.1]"))
    narrow = Target(load_profile(path, env={"EXPORT_TEST_TOKEN": TOKEN}))
    before = len(other.seen)
    away = f"http://localhost:{other.server_address[1]}/good.json"
    try:
        for link in (away, "/redirect-to/" + away.replace("/", "_")):
            with pytest.raises(PrivacyChecksError) as info:
                ex.download(narrow, link, auth="subject")
            assert "host 'localhost' is not in allowed_hosts" in str(info.value)
    finally:
        narrow.close()
    assert len(other.seen) == before


def test_credentials_never_go_to_another_host_even_an_allowed_one(target, servers):
    main, other = servers
    away = f"http://localhost:{other.server_address[1]}/good.json"
    export = _get(target, "/redirect-to/" + away.replace("/", "_"))
    assert export.machine_readable
    assert main.seen[-1][1].get("Authorization") == f"Bearer {TOKEN}"
    sent = other.seen[-1][1]
    assert "Authorization" not in sent and TOKEN not in json.dumps(sent)


def test_the_default_schema_rejects_an_empty_export(target):
    errors = ex.validate(_get(target, "/empty.json"), ex.DEFAULT_SCHEMA)
    assert errors == ["at /: {} is not valid under any of the given schemas"], errors


def test_the_packaged_default_schema_is_the_fixtures_one():
    root = ex.Path(ex.__file__).resolve().parents[2]
    packaged = root / "privacy_checks" / "schemas" / "export.default.json"
    assert (root / "fixtures" / "schemas" / "export.default.json").read_text() == packaged.read_text()


def test_a_broken_schema_file_is_one_clear_error_naming_it(target, tmp_path):
    bad = tmp_path / "schema.json"
    bad.write_text("{not json")
    with pytest.raises(ex.ExportError, match=str(bad)):
        ex.validate(_get(target, "/good.json"), bad)


# -- files a command step wrote ------------------------------------------------------------------

def test_a_directory_of_exports_is_read_part_by_part(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "user.json").write_text(json.dumps(GOOD))
    (tmp_path / "out" / "activity.csv").write_bytes(CSV)
    export = ex.load_path(tmp_path / "out")
    assert export.machine_readable and export.formats == ["csv", "json"]
    assert set(export.document()) == {"user.json", "activity.csv"}


@pytest.mark.parametrize(("name", "body", "problem"), [
    ("export.zip", b"PK\x03\x04 not really a zip", "corrupt zip archive"),
    ("export.json", json.dumps(GOOD).encode()[:-3], "not valid JSON"),
    ("export.csv", b'id,name\n1,"unterminated\n', "not valid CSV"),
    ("export.txt", b"Your name is Ada", "TEXT is not a machine-readable format"),
    ("export.json", b"\xff\xfe\x00bad", "not UTF-8 text"),
])
def test_bad_export_files_fail_clearly(tmp_path, name, body, problem):
    path = tmp_path / name
    path.write_bytes(body)
    export = ex.load_path(path)
    assert not export.machine_readable
    assert any(problem in p for p in export.format_problems()), export.format_problems()


def test_a_missing_export_path_is_one_clear_error(tmp_path):
    with pytest.raises(ex.ExportError, match="does not exist"):
        ex.load_path(tmp_path / "nowhere")


def test_a_directory_with_too_many_files_is_refused(tmp_path):
    for i in range(30):
        (tmp_path / f"{i}.json").write_text("{}")
    with pytest.raises(ex.ExportError, match="more than 5 files"):
        ex.load_path(tmp_path, ex.Limits(max_files=5))
