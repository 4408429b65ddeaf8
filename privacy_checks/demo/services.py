"""Real services on loopback for the demo and the framework's tests: redis-server and an S3 endpoint.

Each runs as its own process, started on a free loopback port and stopped with its owner: the
demo starts both with itself (they share its process group, so stopping the demo stops them),
and tests start their own, so no test depends on a service started beforehand.

- ``RedisServer``: Debian's ``redis-server`` binary, no persistence, a password when asked.
- ``S3Server``: moto's standalone server (``moto[server]``), an in-memory S3-compatible endpoint;
  ``python -m privacy_checks.demo.services s3`` binds port 0 and prints the port it got.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing
from dataclasses import dataclass, field

from ..errors import PrivacyChecksError

S3_READY = "privacy-checks s3 ready"
# The pid a started process follows: it stops once that process is gone. Named by the starter in
# the environment, because a child that read its parent's pid only once it was ready could read
# it after the parent had died (then it reads init's pid, and waits for init to die).
OWNER_ENV = "PRIVACY_CHECKS_OWNER"


def owner_pid() -> int:
    """The process this one should stop with: the one its starter named, else its parent now."""
    named = os.environ.get(OWNER_ENV, "")
    return int(named) if named.isdigit() else os.getppid()


def owned_by(owner: int) -> dict[str, str]:
    """The environment entry that makes a started process stop with `owner`."""
    return {OWNER_ENV: str(owner)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    _reap(proc)


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class RedisServer:
    """``redis-server`` on 127.0.0.1 and a free port; ``url`` carries the password if any."""

    password: str | None = None
    start_timeout: float = 15.0
    port: int = 0
    proc: subprocess.Popen | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(binary):
            raise PrivacyChecksError("redis-server not found: install Debian's redis-server package "
                                     "(apt-get install redis-server)")
        last = ""
        for _ in range(3):  # the free port may be taken between choosing and binding it
            self.port = free_port()
            with tempfile.NamedTemporaryFile("w+", prefix="redis-", suffix=".log", delete=False) as log:
                logfile = log.name
            # "-": the rest of the configuration from stdin, so the password never shows in ps
            argv = [binary, "-", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                    "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning",
                    "--logfile", logfile, *self.extra]
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         stdin=subprocess.PIPE, text=True)
            assert self.proc.stdin is not None
            if self.password:
                quoted = self.password.replace("\\", "\\\\").replace('"', '\\"')
                self.proc.stdin.write(f'requirepass "{quoted}"\n')
            self.proc.stdin.close()
            started = self._wait()
            last = open(logfile, errors="replace").read().strip() if not started else ""
            os.unlink(logfile)
            if started:
                return self
            _stop(self.proc)
        raise PrivacyChecksError(f"redis-server did not start on 127.0.0.1: {last.splitlines()[-1] if last else ''}")

    def _wait(self) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def terminate(self) -> None:
        """Ask it to stop without waiting (``stop`` then waits): services stop side by side."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None


@dataclass
class S3Server:
    """moto's standalone S3-compatible server on 127.0.0.1 and a port it chose itself."""

    start_timeout: float = 60.0
    url: str = ""
    proc: subprocess.Popen | None = None
    access_key: str = "privacy-checks"
    secret_key: str = "privacy-checks-secret"
    region: str = "us-east-1"
    # moto checks no credentials unless told to: {"INITIAL_NO_AUTH_ACTION_COUNT": "0"} makes it
    # refuse every key it does not know (what a wrong key meets on a real endpoint)
    env: dict[str, str] = field(default_factory=dict)
    _stderr: typing.IO[str] | None = field(default=None, repr=False)

    def start(self) -> S3Server:
        # stderr goes to an unnamed file, never to a pipe: nobody reads a pipe once the server is
        # up, and a full one (64 KiB, a few hundred logged requests) would stop the server mid-run
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "privacy_checks.demo.services", "s3"],
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                     stdin=subprocess.DEVNULL,
                                     env={**os.environ, **self.env, **owned_by(os.getpid())})
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.start_timeout
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                if not sel.select(timeout=0.2):
                    continue
                line = self.proc.stdout.readline()
                if line.startswith(S3_READY):
                    self.url = line.split("url=", 1)[1].strip()
                    return self
                if not line:
                    break
        finally:
            sel.close()
        err = ""
        if self.proc.poll() is not None:
            self._stderr.seek(0)
            err = self._stderr.read().strip()
        self.stop()
        raise PrivacyChecksError(f"the S3 server (moto) did not start within {self.start_timeout:.0f} s"
                                 + (f": {err.splitlines()[-1]}" if err else ""))

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}))

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        _stop(self.proc)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self.proc = None


def _serve_s3() -> int:
    import logging

    owner = owner_pid()

    from moto.server import ThreadedMotoServer

    # werkzeug logs every request; over a long run that is megabytes nobody reads
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer("127.0.0.1", 0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # Everything is in memory: there is nothing to save, so a signal ends the process at once.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    print(f"{S3_READY} url=http://{host}:{port}", flush=True)
    # the owner reads stdout only up to the ready line: nothing may be written there after it
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    while os.getppid() == owner:  # reparented (its owner killed): it stops too
        time.sleep(0.5)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["s3"]:
        sys.exit(_serve_s3())
    print("usage: python -m privacy_checks.demo.services s3", file=sys.stderr)
    sys.exit(2)
