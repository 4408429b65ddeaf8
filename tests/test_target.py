"""Target safety rails, against a real HTTP server on loopback (no mocked HTTP)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from privacy_checks.errors import TargetError, UnexpectedStatus
from privacy_checks.profile import load_profile
from privacy_checks.target import Target


class _Scripted(BaseHTTPRequestHandler):
    """Answers by path; counts requests so retries can be observed."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def _go(self):
        srv = self.server
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with srv.lock:
            srv.hits.append((self.command, self.path, dict(self.headers), body.decode()))
            count = sum(1 for h in srv.hits if h[1] == self.path and h[0] == self.command)
        if self.path.startswith("/unavailable"):
            status, payload, headers = 503, {"error": "busy"}, {}
        elif self.path.startswith("/flaky") and count == 1:
            status, payload, headers = 503, {"error": "busy"}, {}
        elif self.path.startswith("/redirect-out"):
            status, payload, headers = 302, {}, {"Location": "http://203.0.113.7/steal"}
        elif self.path.startswith("/redirect-in"):
            status, payload, headers = 302, {}, {"Location": "/echo"}
        elif self.path.startswith("/token"):
            srv.tokens += 1
            status, headers = 200, {}
            payload = {"access_token": f"tok-{srv.tokens}", "expires_in": srv.expires_in, "token_type": "bearer"}
        elif self.path.startswith("/slow"):
            threading.Event().wait(3)
            status, payload, headers = 200, {}, {}
        else:
            status, payload, headers = 200, {"ok": True, "token": "s3cr3t-token", "path": self.path}, {
                "Set-Cookie": "session=abc123; Secure"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except BrokenPipeError:  # the client gave up (the timeout test): that is the point
            pass

    do_GET = do_POST = do_PUT = do_DELETE = _go


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    srv.hits, srv.lock, srv.tokens, srv.expires_in = [], threading.Lock(), 0, 3600
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _profile(tmp_path, port, extra_ops="", request_timeout=5):
    path = tmp_path / "t.yaml"
    path.write_text(f"""
name: scripted
base_url: http://127.0.0.1:{port}
allowed_hosts: [127.0.0.1]
auth:
  admin: {{type: bearer, token: "${{T_TOKEN}}"}}
timeouts: {{request: {request_timeout}, operation: 20}}
operations:
  post_unavailable:
    steps: [{{method: POST, path: /unavailable, auth: admin, json: {{password: "hunter2"}}, expect: [200]}}]
  get_flaky:
    steps: [{{method: GET, path: /flaky, expect: [200]}}]
  leave:
    steps: [{{method: GET, path: /redirect-out, auth: admin, expect: [200]}}]
  stay:
    steps: [{{method: GET, path: /redirect-in, auth: admin, expect: [200], capture: {{p: json.path}}}}]
  slow:
    steps: [{{method: GET, path: /slow, expect: [200], timeout: 1}}]
  echo:
    steps: [{{method: POST, path: "/echo/{{{{ captured.name }}}}", auth: admin, json: {{password: "hunter2", n: "{{{{ captured.name }}}}"}}, expect: [200], capture: {{token: json.token}}}}]
{extra_ops}
""")
    return load_profile(path, env={"T_TOKEN": "admin-secret-42"})


def test_a_sent_post_is_never_repeated_even_on_503(server, tmp_path):
    target = Target(_profile(tmp_path, server.server_address[1]))
    with pytest.raises(UnexpectedStatus) as err:
        target.run("post_unavailable", None, {})
    assert err.value.status == 503
    assert [h[0] for h in server.hits] == ["POST"]


def test_an_idempotent_get_is_retried_on_503(server, tmp_path):
    target = Target(_profile(tmp_path, server.server_address[1]))
    target.run("get_flaky", None, {})
    assert [h[1] for h in server.hits] == ["/flaky", "/flaky"]


def test_a_redirect_to_a_host_not_allowed_is_refused_and_nothing_is_sent_there(server, tmp_path):
    target = Target(_profile(tmp_path, server.server_address[1]))
    with pytest.raises(TargetError, match=r"refused to contact http://203\.0\.113\.7/steal: host '203\.0\.113\.7' "
                                          r"is not in allowed_hosts"):
        target.run("leave", None, {})


def test_a_redirect_within_the_allowed_host_is_followed(server, tmp_path):
    target = Target(_profile(tmp_path, server.server_address[1]))
    result = target.run("stay", None, {})
    assert result.captured["p"] == "/echo"


def test_a_url_on_another_host_is_refused_before_any_connection(server, tmp_path):
    target = Target(_profile(tmp_path, server.server_address[1]))
    with pytest.raises(TargetError, match="host 'localhost' is not in allowed_hosts"):
        target.request("GET", f"http://localhost:{server.server_address[1]}/echo")
    assert server.hits == []


def test_credentials_are_not_sent_to_another_allowed_host(server, tmp_path):
    profile = _profile(tmp_path, server.server_address[1])
    profile.data["allowed_hosts"] = ["127.0.0.1", "localhost"]
    target = Target(profile)
    target.request("GET", f"http://localhost:{server.server_address[1]}/echo",
                   headers={"Authorization": "Bearer admin-secret-42"})
    assert "Authorization" not in server.hits[-1][2]


def test_a_slow_target_times_out_with_the_url_named(server, tmp_path):
    target = Target(_profile(tmp_path, server.server_address[1]))
    with pytest.raises(TargetError, match=r"GET http://127\.0\.0\.1:\d+/slow timed out after 1 s"):
        target.run("slow", None, {})


def test_an_unreachable_target_gives_one_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = Target(_profile(tmp_path, port))
    with pytest.raises(TargetError, match=rf"cannot reach http://127\.0\.0\.1:{port}/flaky"):
        target.run("get_flaky", None, {})


def test_recorded_exchanges_redact_tokens_cookies_and_passwords(server, tmp_path):
    target = Target(_profile(tmp_path, server.server_address[1]))
    result = target.run("echo", None, {"name": "a b/c"})
    assert server.hits[-1][1] == "/echo/a%20b%2Fc"  # path values are URL-encoded
    assert result.captured["token"] == "s3cr3t-token"
    dumped = json.dumps([e.to_dict() for e in target.exchanges])
    for secret in ("admin-secret-42", "hunter2", "s3cr3t-token", "abc123"):
        assert secret not in dumped
    assert "[REDACTED]" in dumped


def _oauth_profile(tmp_path, port):
    path = tmp_path / "oauth.yaml"
    path.write_text(f"""
name: oauth
base_url: http://127.0.0.1:{port}
allowed_hosts: [127.0.0.1]
auth:
  api: {{type: oauth2_client_credentials, token_url: "http://127.0.0.1:{port}/token", client_id: ci,
         client_secret: "${{CLIENT_SECRET}}", scope: privacy}}
operations:
  call:
    steps: [{{method: GET, path: /echo, auth: api, expect: [200]}}]
""")
    return load_profile(path, env={"CLIENT_SECRET": "cs-very-secret"})


def test_oauth2_client_credentials_token_is_fetched_once_and_reused(server, tmp_path):
    target = Target(_oauth_profile(tmp_path, server.server_address[1]))
    target.run("call", None, {})
    target.run("call", None, {})
    assert server.tokens == 1
    token_request = next(h for h in server.hits if h[1] == "/token")
    assert "grant_type=client_credentials" in token_request[3] and "scope=privacy" in token_request[3]
    calls = [h for h in server.hits if h[1] == "/echo"]
    assert [c[2]["Authorization"] for c in calls] == ["Bearer tok-1", "Bearer tok-1"]
    assert "cs-very-secret" not in json.dumps([e.to_dict() for e in target.exchanges])


def test_oauth2_token_is_refreshed_when_it_is_about_to_expire(server, tmp_path):
    server.expires_in = 5  # inside the 30 s safety margin: every call needs a fresh token
    target = Target(_oauth_profile(tmp_path, server.server_address[1]))
    target.run("call", None, {})
    target.run("call", None, {})
    calls = [h for h in server.hits if h[1] == "/echo"]
    assert [c[2]["Authorization"] for c in calls] == ["Bearer tok-1", "Bearer tok-2"]
