"""A throwaway PostgreSQL cluster for tests and benchmarks, on loopback only."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

ENV_URL = "PRIVACY_CHECKS_TEST_PG_URL"


class PostgresUnavailable(RuntimeError):
    """No server binaries here (and no URL given): the caller decides whether that skips or fails."""


def find_bindir() -> Path | None:
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    # Debian's pg_config may belong to the client package and point at a bindir without initdb.
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_throwaway_cluster(tmpdir: str | os.PathLike[str]) -> tuple[str, Callable[[], None]]:
    """Start a cluster under ``tmpdir``; return its SQLAlchemy URL and a function that stops it.

    Honours PRIVACY_CHECKS_TEST_PG_URL (then nothing is started and stop does nothing).
    """
    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL], lambda: None
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "no initdb/pg_ctl found (looked at pg_config --bindir and /usr/lib/postgresql/*/bin)"
        )

    base = Path(tmpdir) / "pgcluster"
    data, sockets = base / "data", base / "sock"
    data.mkdir(parents=True)
    sockets.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError as e:
            raise PostgresUnavailable(
                "running as root and there is no 'postgres' user to run initdb as"
            ) from e
        for path in (base, data, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
        # The tmp parents must be traversable by that user.
        parent = Path(tmpdir).resolve()
        while parent != parent.parent:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
            parent = parent.parent
        prefix = ["runuser", "-u", "postgres", "--"]

    port = _free_port()
    log = base / "server.log"

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stderr or proc.stdout}")

    run(
        str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"
    )
    opts = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    if prefix:
        log.touch()
        os.chown(log, pwd.getpwnam("postgres").pw_uid, pwd.getpwnam("postgres").pw_gid)
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")

    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop
