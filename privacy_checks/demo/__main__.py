"""Run the demo target: python -m privacy_checks.demo --data-dir DIR [--flaw NAME ...].

The admin token comes from $PRIVACY_CHECKS_DEMO_ADMIN_TOKEN or --admin-token-file (a command
line is visible to every user in `ps`; --admin-token is still accepted)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from .faults import FAULTS, parse_faults
from .flaws import FLAWS, parse_flaws
from .server import DemoConfig, DemoServer
from .services import owner_pid

FLAWS_ENV = "PRIVACY_CHECKS_DEMO_FLAWS"
TOKEN_ENV = "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m privacy_checks.demo",
        description="Serve the built-in demo target (MediaPRO's training service) on loopback.",
        epilog="flaws: " + ", ".join(sorted(FLAWS)) + "; faults: " + ", ".join(sorted(FAULTS)),
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="https port (0 = any free port)")
    parser.add_argument("--http-port", type=int, default=0, help="http port that redirects to https (0 = any)")
    parser.add_argument("--data-dir", type=Path, required=True, help="where the stores, logs and CA are written")
    parser.add_argument(
        "--admin-token", default=os.environ.get(TOKEN_ENV),
        help=f"bearer token for admin endpoints (default: ${TOKEN_ENV}, which keeps it out of ps)",
    )
    parser.add_argument("--admin-token-file", type=Path, help="read the admin token from this file")
    parser.add_argument("--sink-url", help="base URL of the third-party capture sink (webhooks go here)")
    parser.add_argument("--sink-ca", type=Path, help="CA certificate (PEM) to verify an https sink with")
    parser.add_argument("--smtp-url", help="smtp://HOST:PORT on loopback: also send the outbox's mail there")
    parser.add_argument(
        "--flaw", action="append", default=[], metavar="NAME",
        help=f"switch a flaw on (repeatable, or comma-separated; also ${FLAWS_ENV}=a,b)",
    )
    parser.add_argument(
        "--fault", action="append", default=[], metavar="NAME",
        help="make the target misbehave: slow, 5xx bursts, dropped connections, bad JSON, ... (repeatable)",
    )
    parser.add_argument(
        "--exit-with-parent", action="store_true",
        help="stop when the process that started it is gone (how a test run starts it: a run killed "
             "outright must not leave the demo, its cache and its object store running)",
    )
    return parser


def main(argv: Sequence[str] | None = None, on_ready=None) -> int:
    """Serve until SIGINT/SIGTERM; `on_ready(server)` runs once it listens (the ready line printed)."""
    args = build_parser().parse_args(argv)
    owner = owner_pid()
    names = [part for value in args.flaw for part in value.split(",")]
    names += os.environ.get(FLAWS_ENV, "").split(",")
    try:
        flaws = parse_flaws(names)
        faults = parse_faults(part for value in args.fault for part in value.split(","))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.admin_token_file:
        try:
            args.admin_token = args.admin_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"cannot read the admin token from {args.admin_token_file}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if not args.admin_token:
        print(f"an admin token is required: ${TOKEN_ENV} or --admin-token-file", file=sys.stderr)
        return 2
    try:
        server = DemoServer(DemoConfig(
            data_dir=args.data_dir, admin_token=args.admin_token, host=args.host, port=args.port,
            http_port=args.http_port, sink_url=args.sink_url, sink_ca=args.sink_ca, smtp_url=args.smtp_url, flaws=flaws,
            faults=faults,
        ))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2

    stopping = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: stopping.set())
    try:
        try:
            server.start()
        except OSError as exc:
            print(f"cannot start the demo on {args.host}: {exc}", file=sys.stderr)
            return 1
        print(server.ready_line(), flush=True)
        if on_ready is not None:
            on_ready(server)
        while not stopping.wait(0.5):
            if args.exit_with_parent and os.getppid() != owner:
                break  # reparented: whoever started us is gone
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
