"""A throwaway PostgreSQL cluster for tests and benchmarks, on loopback only."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
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
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as e:
            raise PostgresUnavailable(
                "running as root and there is no 'postgres' user to run initdb as"
            ) from e
        prefix = ["runuser", "-u", "postgres", "--"]
        # tmpdir's parents (pytest's are 0700, and concurrent pytest runs reset them) may not be
        # traversable by that user: keep the cluster in a directory of its own under the system tmp.
        base = Path(tempfile.mkdtemp(prefix="privacy-checks-pg-"))
    data, sockets, log = base / "data", base / "sock", base / "server.log"
    base.mkdir(parents=True, exist_ok=True)
    data.mkdir()
    sockets.mkdir()
    log.touch()
    if owner is not None:
        for path in (base, data, sockets, log):
            os.chown(path, owner.pw_uid, owner.pw_gid)

    port = _free_port()

    def run(*args: str) -> None:
        proc = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            if owner is not None:
                shutil.rmtree(base, ignore_errors=True)
            raise RuntimeError(f"{Path(args[0]).name} failed: {proc.stderr or proc.stdout}\n{tail}")

    run(
        str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"
    )
    opts = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
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
        if owner is not None:
            shutil.rmtree(base, ignore_errors=True)

    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", stop
