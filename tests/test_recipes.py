"""Steps as real systems need them: command steps, raw bodies, uploads, SQL results, target names.

A real HTTP server on loopback records what each step sent; command steps run real programs.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import sys
import textwrap
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from privacy_checks.errors import TargetError
from privacy_checks.observe import exports as ex
from privacy_checks.profile import lint, load_profile
from privacy_checks.subjects import SubjectFactory
from privacy_checks.target import Target


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def _go(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.hits.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body})
        data = json.dumps({"id": 7, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _go


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.hits = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def subject():
    return SubjectFactory(seed="recipes", nonce="n1").build("tests/test_recipes.py::x")


def _target(tmp_path: Path, port: int, operations: str, extra: str = "", env: dict | None = None,
            keep: bool = False) -> Target:
    path = tmp_path / "profiles" / "t.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"""\
name: recipes
base_url: http://127.0.0.1:{port}/api/v1
allowed_hosts: [127.0.0.1]
operations:
{textwrap.indent(textwrap.dedent(operations), "  ")}
{extra}""")
    env = {"EXPORT_TOKEN": "tok-from-env", **(env or {})}
    assert lint(path, env) == []
    profile = load_profile(path, env)
    stores = {s["name"]: s for s in profile.stores}
    return Target(profile, stores=stores, keep_artifacts=keep)


TOOL = """\
import json, os, sys
out = sys.argv[1]
with open(os.path.join(out, "export.json"), "w") as fh:
    json.dump({"cwd": os.getcwd(), "stdin": sys.stdin.read(), "env_dir": os.environ["EXPORT_DIR"],
               "token": os.environ["EXPORT_TOKEN_SEEN"], "user": sys.argv[2]}, fh)
print(json.dumps({"job": "j-1", "dir": out}))
print("exported one subject", file=sys.stderr)
"""

COMMAND_OPS = f"""\
export:
  steps:
    - command: ["{sys.executable}", ./bin/tool.py, "{{{{ output_dir }}}}", "{{{{ subject.email }}}}"]
      timeout: 30
      env: {{EXPORT_DIR: "{{{{ output_dir }}}}", EXPORT_TOKEN_SEEN: "${{EXPORT_TOKEN}}"}}
      stdin: "export {{{{ subject.username }}}}"
      capture: {{job: json.job, said: stderr, exit: status, first_dir: output_dir}}
    - command: ["{sys.executable}", -c, "import sys; print(open(sys.argv[1]).read())",
                "{{{{ captured.first_dir }}}}/export.json"]
      timeout: 30
      capture: {{copied: stdout}}
"""


def test_a_command_step_runs_in_the_profiles_directory_with_its_own_output_dir_env_and_stdin(tmp_path, subject):
    (tmp_path / "profiles" / "bin").mkdir(parents=True)
    (tmp_path / "profiles" / "bin" / "tool.py").write_text(TOOL)
    target = _target(tmp_path, 9, COMMAND_OPS,
                     extra='export:\n  delivery: files\n  files: "{{ captured.first_dir }}/export.json"\n')
    first = target.run("export", subject, {})
    out_dir = Path(first.captured["first_dir"])
    written = json.loads((out_dir / "export.json").read_text())
    # the profile's directory, one directory for every place {{ output_dir }} appears in the step
    assert written["cwd"] == str(tmp_path / "profiles")
    assert written["env_dir"] == str(out_dir)
    assert written["stdin"] == f"export {subject.fields['username']}"
    assert written["token"] == "tok-from-env"
    assert written["user"] == subject.fields["email"]
    assert first.captured["job"] == "j-1" and first.captured["exit"] == 0
    assert first.captured["said"] == "exported one subject"
    assert json.loads(first.captured["copied"]) == written
    # the last command step's directory is captured as output_dir
    assert first.captured["output_dir"] != first.captured["first_dir"]
    assert target.condition("export", "'exported' in stderr and status == 0", first.last) is False
    assert target.condition("export", "stdout contains 'cwd' and exists(output_dir)", first.last) is True

    export = ex.obtain(target, subject, first.captured, result=first)
    assert export.machine_readable and export.document()["user"] == subject.fields["email"]

    second = target.run("export", subject, {})
    assert second.captured["first_dir"] != first.captured["first_dir"]  # fresh per execution
    target.close()
    assert not out_dir.exists() and not Path(second.captured["first_dir"]).exists()


def test_keep_artifacts_keeps_the_output_directories(tmp_path, subject):
    (tmp_path / "profiles" / "bin").mkdir(parents=True)
    (tmp_path / "profiles" / "bin" / "tool.py").write_text(TOOL)
    target = _target(tmp_path, 9, COMMAND_OPS, keep=True,
                     extra='export:\n  delivery: files\n  files: "{{ captured.first_dir }}/export.json"\n')
    result = target.run("export", subject, {})
    target.close()
    assert (Path(result.captured["first_dir"]) / "export.json").exists()


def test_a_failing_command_names_itself_and_its_directory(tmp_path, subject):
    target = _target(tmp_path, 9, """\
        activity:
          steps:
            - {command: [./bin/missing-tool], timeout: 5}
        """)
    with pytest.raises(TargetError, match=r"operation 'activity' step 1: command './bin/missing-tool' could not "
                                          rf"start in {tmp_path}/profiles: No such file or directory"):
        target.run("activity", subject, {})


def test_sql_step_results_offer_row_rows_and_rowcount(tmp_path, subject):
    db = tmp_path / "shop.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customer (id INTEGER PRIMARY KEY, email TEXT)")
    con.execute("INSERT INTO customer (email) VALUES (?)", (subject.fields["email"],))
    con.commit()
    con.close()
    target = _target(tmp_path, 9, """\
        read_subject:
          steps:
            - sql: "SELECT id, email FROM customer WHERE email = :email"
              store: db
              params: {email: "{{ subject.email }}"}
              capture: {found: rowcount}
          gone_when: rowcount == 0
        cleanup:
          steps:
            - sql: "SELECT id FROM customer WHERE email = :email"
              store: db
              params: {email: "{{ subject.email }}"}
              capture: {customer_id: row.id}
            - sql: "DELETE FROM customer WHERE id = :id"
              store: db
              params: {id: "{{ captured.customer_id }}"}
              capture: {removed: rowcount}
        """, extra=f"stores:\n  - {{name: db, url: 'sqlite:///{db}'}}\n")
    found = target.run("read_subject", subject, {})
    assert found.captured == {"found": 1}
    assert target.condition("read_subject", "row.email == rows.0.email and rowcount == 1", found.last)
    assert target.run("cleanup", subject, {}).captured == {"customer_id": 1, "removed": 1}
    gone = target.run("read_subject", subject, {})
    assert gone.captured["found"] == 0
    assert target.condition("read_subject", "rowcount == 0 and row == null", gone.last)
    assert gone.last.describe() == "the SQL step on store db found 0 row(s)"


def test_raw_bodies_text_and_binary_carry_their_content_type(tmp_path, server, subject):
    payload = base64.b64encode(b"\x00\x01binary\xff").decode()
    target = _target(tmp_path, server.server_address[1], f"""\
        activity:
          steps:
            - method: PUT
              path: /notes/{{{{ captured.user_id }}}}
              body: "name={{{{ subject.full_name }}}}\\n"
              content_type: text/plain; charset=utf-8
            - method: POST
              path: /blobs
              body: !!binary {payload}
              content_type: application/octet-stream
        """)
    target.run("activity", subject, {"user_id": 3})
    note, blob = server.hits
    assert note["path"] == "/api/v1/notes/3"  # joined under base_url's own path
    assert note["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert note["body"].decode() == f"name={subject.fields['full_name']}\n"
    assert blob["body"] == b"\x00\x01binary\xff"
    assert blob["headers"]["Content-Type"] == "application/octet-stream"


def _parts(hit) -> list:
    raw = f"Content-Type: {hit['headers']['Content-Type']}\r\n\r\n".encode() + hit["body"]
    return list(BytesParser(policy=HTTP).parsebytes(raw).iter_parts())


def test_multipart_uploads_carry_canaries_in_file_names_and_metadata(tmp_path, server, subject):
    target = _target(tmp_path, server.server_address[1], """\
        activity:
          steps:
            - method: POST
              path: /media
              form: {caption: "{{ subject.custom_field }}"}
              files:
                - {field: photo, generate: jpeg}
                - {field: scan, generate: png, filename: "scan-{{ subject.username }}.png"}
                - {field: notes, content: "{{ subject.email }}", filename: notes.txt, content_type: text/plain}
        """)
    target.run("activity", subject, {})
    parts = {p.get_param("name", header="content-disposition"): p for p in _parts(server.hits[0])}
    assert parts["caption"].get_content() == subject.fields["custom_field"]
    photo = parts["photo"]
    assert photo.get_filename() == f"{subject.fields['full_name']}.jpg"
    assert photo.get_content_type() == "image/jpeg"
    jpeg = photo.get_payload(decode=True)
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    assert b"Exif\x00\x00" in jpeg
    assert subject.fields["full_name"].encode() in jpeg and subject.fields["email"].encode() in jpeg
    scan = parts["scan"]
    assert scan.get_filename() == f"scan-{subject.fields['username']}.png"
    png = scan.get_payload(decode=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"tEXtAuthor\x00" + subject.fields["full_name"].encode() in png
    assert parts["notes"].get_payload(decode=True) == subject.fields["email"].encode()


def test_target_origin_base_url_and_path_joining(tmp_path, server, subject):
    port = server.server_address[1]
    target = _target(tmp_path, port, """\
        activity:
          steps:
            - method: POST
              path: /sessions
              headers: {Origin: "{{ target.origin }}", Referer: "{{ target.base_url }}/app"}
            - method: GET
              path: "http://127.0.0.1:{port}/health"
            - method: GET
              path: users/{{ subject.id }}
        """.replace("{port}", str(port)))
    target.run("activity", subject, {})
    first, absolute, relative = server.hits
    assert first["path"] == "/api/v1/sessions"
    assert first["headers"]["Origin"] == f"http://127.0.0.1:{port}"
    assert first["headers"]["Referer"] == f"http://127.0.0.1:{port}/api/v1/app"
    assert absolute["path"] == "/health"
    assert relative["path"] == f"/api/v1/users/{subject.id}"


def test_basic_auth_takes_a_password_captured_at_run_time(tmp_path, server, subject):
    target = _target(tmp_path, server.server_address[1], """\
        activity:
          steps:
            - {method: GET, path: /me, auth: legacy}
        """, extra='auth:\n  legacy: {type: basic, username: "{{ subject.username }}", '
                   'password: "{{ captured.app_password }}"}\n')
    target.run("activity", subject, {"app_password": "p-123"})
    sent = server.hits[0]["headers"]["Authorization"]
    assert base64.b64decode(sent.split()[1]).decode() == f"{subject.fields['username']}:p-123"
    assert "p-123" not in json.dumps([e.to_dict() for e in target.exchanges])


def test_a_step_as_the_decoy_acts_with_its_credentials_and_is_guarded(tmp_path, server, subject):
    decoy = SubjectFactory(seed="recipes", nonce="n1").build("tests/test_recipes.py::x", role="decoy")
    path = tmp_path / "interact.yaml"
    path.write_text(f"""\
name: recipes
base_url: http://127.0.0.1:{server.server_address[1]}
allowed_hosts: [127.0.0.1]
auth:
  user: {{type: bearer, token: "{{{{ captured.token }}}}"}}
operations:
  create_subject:
    steps: [{{method: POST, path: /users, capture: {{user_id: json.id}}}}]
  login:
    steps: [{{method: POST, path: /login, capture: {{token: json.path}}}}]
  interact:
    steps:
      - method: POST
        path: /rooms
        auth: user
        json: {{members: ["{{{{ decoy.captured.user_id }}}}"], by: "{{{{ subject.username }}}}"}}
        capture: {{room_id: json.id}}
      - method: POST
        path: /rooms/{{{{ captured.room_id }}}}/messages
        as: decoy
        auth: user
        json: {{body: "{{{{ decoy.username }}}}"}}
""")
    assert lint(path, {}) == []
    guarded = []
    target = Target(load_profile(path, {}), guard=lambda s: guarded.append(s.role))
    subject.captured.update(token="subject-token", user_id=1)
    decoy.captured.update(token="decoy-token", user_id=2)
    target.run("interact", subject, others={"decoy": decoy, "control": decoy})
    room, message = server.hits
    assert room["headers"]["Authorization"] == "Bearer subject-token"
    assert json.loads(room["body"]) == {"members": [2], "by": subject.fields["username"]}
    assert message["path"] == "/rooms/7/messages"  # the subject's capture, in the decoy's step
    assert message["headers"]["Authorization"] == "Bearer decoy-token"
    assert json.loads(message["body"]) == {"body": decoy.fields["username"]}
    assert sorted(guarded) == ["decoy", "subject"]  # the ledger guard saw both
    with pytest.raises(TargetError, match=r"'\{\{ decoy.captured.user_id \}\}': the operation runs without a decoy"):
        target.run("interact", subject, {"room_id": 7, "user_id": 1})


def test_the_subjects_ip_goes_in_the_profiles_ip_header_unless_a_step_sets_it(tmp_path, server, subject):
    """subject.ip_header: every HTTP step run for the subject carries its address, as a proxy in
    front of the target would add it; a step's own value for that header wins."""
    assert subject.fields.get("ip_address")
    target = _target(tmp_path, server.server_address[1], """\
        activity:
          steps:
            - method: POST
              path: /visits
              json: {course: intro}
            - method: POST
              path: /visits
              headers: {x-forwarded-for: 192.0.2.1}
        """, extra="subject:\n  ip_header: X-Forwarded-For\n")
    target.run("activity", subject, {})
    plain, own = server.hits
    assert plain["headers"]["X-Forwarded-For"] == subject.fields["ip_address"]
    assert {k.lower(): v for k, v in own["headers"].items()}["x-forwarded-for"] == "192.0.2.1"

    without = _target(tmp_path, server.server_address[1], """\
        activity:
          steps:
            - method: POST
              path: /visits
        """)
    without.run("activity", subject, {})
    assert "X-Forwarded-For" not in server.hits[-1]["headers"]
