"""Corporate networks: the profile's `proxy:` (or, when it says so, the standard variables) carries
the run's requests to the target through a real proxy (Debian's tinyproxy on a loopback port),
and allowed_hosts stays authoritative."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_suites
from privacy_checks.demo.launch import DemoProcess
from privacy_checks.errors import TargetError
from privacy_checks.observe import transport as obs
from privacy_checks.profile import lint, load_profile
from privacy_checks.proxy import Proxy
from privacy_checks.target import Target

PROFILE = ROOT / "fixtures" / "targets" / "demo.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tinyproxy:
    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("tinyproxy")
        if binary is None:
            pytest.fail("the proxy tests need Debian's tinyproxy: apt-get install -y tinyproxy")
        self.port = _free_port()
        self.log = tmp / "tinyproxy.log"
        conf = tmp / "tinyproxy.conf"
        conf.write_text(f'Port {self.port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{self.log}"\n'
                        "LogLevel Connect\nMaxClients 50\nAllow 127.0.0.1\n")
        self.proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"tinyproxy did not listen on 127.0.0.1:{self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[str]:
        """What clients asked the proxy for ('CONNECT host:port', 'GET http://…')."""
        text = self.log.read_text() if self.log.exists() else ""
        return [line.split("): ", 1)[1].rsplit(" HTTP/", 1)[0] for line in text.splitlines() if "Request (" in line]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def tinyproxy(tmp_path):
    proxy = Tinyproxy(tmp_path)
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def demo():
    d = DemoProcess().start()
    yield d
    d.stop()


def profile_with(tmp_path: Path, proxy: dict | None, allowed: list[str] | None = None) -> Path:
    data = yaml.safe_load(PROFILE.read_text())
    data.pop("policy", None)
    if proxy is not None:
        data["proxy"] = proxy
    if allowed is not None:
        data["allowed_hosts"] = allowed
    path = tmp_path / "demo-proxied.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_suites_reach_the_target_through_the_profiles_proxy(tmp_path, tinyproxy, demo):
    profile = profile_with(tmp_path, {"url": tinyproxy.url})
    run = run_suites(tmp_path, "suites", env=demo.env(), args=(
        "--privacy-target", str(profile), "--privacy-check", "transport.tls.*", "--privacy-check",
        "transport.https.hsts", "--privacy-check", "transport.http.redirect-only", "--privacy-check",
        "gpc.support-resource.valid"))
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(run.outcomes().values()) == {"passed"} and len(run.results) == 5, run.outcomes()
    https = demo.url.split("://", 1)[1].rstrip("/")
    asked = tinyproxy.requests()
    # https requests and the raw TLS probes tunnel through CONNECT; plain http goes as an absolute URL.
    assert asked.count(f"CONNECT {https}") >= 4, asked
    assert any(a.startswith(f"GET {demo.http_url.rstrip('/')}/") for a in asked), asked


def test_the_environments_proxy_only_when_the_profile_says_so(tmp_path, tinyproxy, demo, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    env = demo.env()
    host, port = obs.endpoint(demo.url)

    def gpc(profile_path: Path) -> int:
        target = Target(load_profile(profile_path, env=env))
        try:
            return target.request("GET", demo.url.rstrip("/") + "/.well-known/gpc.json").status
        finally:
            target.close()

    assert gpc(profile_with(tmp_path, None)) == 200
    assert tinyproxy.requests() == []  # no `proxy:` in the profile: the variable is ignored
    assert gpc(profile_with(tmp_path, {"from_environment": True})) == 200
    assert tinyproxy.requests() == [f"CONNECT {host}:{port}"]
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert gpc(profile_with(tmp_path, {"from_environment": True})) == 200
    assert len(tinyproxy.requests()) == 1  # NO_PROXY honoured
    # The certificate check's raw TLS connection takes the same way.
    proxy = Proxy.from_profile(load_profile(profile_with(tmp_path, {"url": tinyproxy.url}), env=env))
    assert obs.check_certificate(host, port, str(Path(env["PRIVACY_CHECKS_DEMO_DATA"]) / "tls" / "ca.pem"),
                                 proxy=proxy).trusted
    assert tinyproxy.requests()[-1] == f"CONNECT {host}:{port}"


def test_allowed_hosts_stay_authoritative_through_a_proxy(tmp_path, tinyproxy, demo, monkeypatch):
    env = demo.env()
    # The proxy is a host the run contacts: it must be allowed like any other — in the profile
    # (lint and load refuse it) and in the environment (refused when a request would use it).
    assert lint(profile_with(tmp_path, {"url": "http://proxy.corp.example:3128"}), env) == [
        "demo-proxied.yaml: proxy.url: host 'proxy.corp.example' is not in allowed_hosts"]
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url.replace("127.0.0.1", "localhost"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    target = Target(load_profile(profile_with(tmp_path, {"from_environment": True}, allowed=["127.0.0.1"]),
                                 env=env))
    with pytest.raises(TargetError, match=r"refused to use the proxy http://localhost:\d+ .* not in allowed_hosts"):
        target.request("GET", demo.url)
    target.close()
    # A destination that is not allowed is refused before the proxy is asked anything.
    target = Target(load_profile(profile_with(tmp_path, {"url": tinyproxy.url}), env=env))
    with pytest.raises(TargetError, match="host 'example.com' is not in allowed_hosts"):
        target.request("GET", "https://example.com/")
    target.close()
    assert tinyproxy.requests() == []
    assert lint(profile_with(tmp_path, {"url": "http://user:hunter2@127.0.0.1:3128"}), env) == [
        "demo-proxied.yaml: proxy.url: the password must come from an environment variable (${VAR})"]
