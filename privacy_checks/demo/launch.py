"""Start and stop the demo target as a real subprocess on a free loopback port.

The demo runs in its own process group with a fresh data directory, so stopping it can
never leave a worker thread or child behind, and a killed test run cannot corrupt it.
"""

from __future__ import annotations

import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PrivacyChecksError
from .services import owned_by

READY = "privacy-checks demo ready"


@dataclass
class DemoProcess:
    flaws: list[str] = field(default_factory=list)
    sink_url: str = "http://127.0.0.1:9"
    data_dir: str | None = None
    # Given to the demo in its environment, never on its command line (which `ps` shows).
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    faults: list[str] = field(default_factory=list)
    smtp_url: str | None = None  # an SMTP capture sink: the demo then also mails what its outbox records
    # What the demo profile's capture.bind says (PRIVACY_CHECKS_DEMO_SINK): a run against this
    # demo with --privacy-target binds its capture sink there. Port 0: any port, which the
    # demo does not deliver to (its sink_url is elsewhere).
    sink_bind: str = "127.0.0.1:0"
    start_timeout: float = 60.0
    url: str = ""
    http_url: str = ""
    redis: str = ""  # host:port of the demo's cache (its password is the admin token)
    s3_url: str = ""  # the demo's S3 endpoint
    proc: subprocess.Popen | None = None
    _tmp: tempfile.TemporaryDirectory | None = None
    _stderr: typing.IO[str] | None = None

    def start(self) -> DemoProcess:
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="privacy-checks-demo-")
            self.data_dir = self._tmp.name
        from ..observe.tls_sink import sink_tls

        # a sink that offers TLS is given to the demo as https, with the CA to verify it
        sink_ca = os.path.join(self.data_dir, "sink-ca.pem")
        https_sink = sink_tls(self.sink_url, Path(sink_ca))
        argv = [sys.executable, "-m", "privacy_checks.demo", "--host", "127.0.0.1", "--port", "0",
                "--data-dir", self.data_dir, "--sink-url", https_sink or self.sink_url, "--exit-with-parent"]
        if https_sink:
            argv += ["--sink-ca", sink_ca]
        for flaw in self.flaws:
            argv += ["--flaw", flaw]
        for fault in self.faults:
            argv += ["--fault", fault]
        if self.smtp_url:
            argv += ["--smtp-url", self.smtp_url]
        env = {k: v for k, v in os.environ.items() if k != "PRIVACY_CHECKS_DEMO_FLAWS"}
        env["PRIVACY_CHECKS_DEMO_ADMIN_TOKEN"] = self.admin_token
        env.update(owned_by(os.getpid()))
        # stderr into an unnamed file, not a pipe nobody reads after start: a long run's tracebacks
        # would fill a pipe and stall the demo mid-request
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     start_new_session=True, env=env)
        line = self._wait_ready()
        parts = dict(p.split("=", 1) for p in line.split()[3:] if "=" in p)
        self.url = parts["url"]
        self.http_url = parts.get("http", "")
        self.redis = parts.get("redis", "")
        self.s3_url = parts.get("s3", "")
        return self

    def _wait_ready(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.start_timeout
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=0.2):
                    if self.proc.poll() is not None:
                        break
                    continue
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith(READY):
                    return line.strip()
        finally:
            sel.close()
        err = ""
        if self.proc.poll() is not None and self._stderr is not None:
            self._stderr.seek(0)
            err = self._stderr.read().strip()
        self.stop()
        raise PrivacyChecksError(f"the demo target did not start within {self.start_timeout:.0f} s"
                                 + (f": {err.splitlines()[-1]}" if err else ""))

    def env(self) -> dict[str, str]:
        return {"PRIVACY_CHECKS_DEMO_URL": self.url, "PRIVACY_CHECKS_DEMO_HTTP_URL": self.http_url,
                "PRIVACY_CHECKS_DEMO_DATA": self.data_dir or "",
                "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": self.admin_token,
                "PRIVACY_CHECKS_DEMO_REDIS": self.redis, "PRIVACY_CHECKS_DEMO_S3_URL": self.s3_url,
                "PRIVACY_CHECKS_DEMO_SINK": self.sink_bind,
                # the demo profile's capture.smtp.bind: where this demo mails (any free port if nowhere)
                "PRIVACY_CHECKS_DEMO_SMTP": self.smtp_url.split("://", 1)[-1] if self.smtp_url else "127.0.0.1:0"}

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        if proc is not None and proc.stdout:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
