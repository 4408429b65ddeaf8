"""The `privacy-checks` command: lint a profile, take a census, clean up orphans, build and verify
reports, run the demo."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from .errors import PrivacyChecksError


def _lint(args) -> int:
    from .profile import lint

    messages = lint(args.profile)
    for m in messages:
        print(m, file=sys.stderr)
    if not messages:
        print(f"{args.profile}: ok")
    return 2 if messages else 0


def _cleanup(args) -> int:
    from .cleanup import cleanup_orphans
    from .ledger import Ledger
    from .profile import load_profile
    from .target import Target

    profile = load_profile(args.target)
    ledger = Ledger(args.ledger)
    from .runtime import store_specs
    from .safety import ensure_owned

    target = Target(profile, stores={s["name"]: s for s in profile.stores},
                    guard=lambda s: ensure_owned(ledger, s, target=profile.name))
    try:
        report = cleanup_orphans(ledger, target, target_name=profile.name, stores=store_specs(profile))
    finally:
        target.close()
        ledger.close()
    for line in report.lines():
        print(line)
    return 1 if report.incomplete else 0


def _census(args) -> int:
    import os

    from .census import main

    args.target = args.target or os.environ.get("PRIVACY_CHECKS_TARGET")
    if args.demo_flaw and args.target:
        print("privacy-checks census: --demo-flaw switches flaws in the built-in demo; it cannot be combined with "
              "--target", file=sys.stderr)
        return 2
    return main(args)


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)


def demo_instructions(*, url: str, http_url: str, data_dir: Path, token_file: Path, sink_bind: str,
                      redis: str, s3_url: str, smtp_bind: str = "127.0.0.1:0", cwd: Path | None = None) -> list[str]:
    """The exact shell lines that point a pytest run at a demo started by hand."""
    from .demo.__main__ import TOKEN_ENV
    from .runtime import demo_profile_path

    cwd = cwd or Path.cwd()
    q = shlex.quote
    in_checkout = (cwd / "fixtures" / "targets" / "demo.yaml").is_file() and (cwd / "suites").is_dir()
    profile = "fixtures/targets/demo.yaml" if in_checkout else q(str(demo_profile_path()))
    suites = "suites" if in_checkout else "--pyargs privacy_checks_suites"
    return [
        "# The demo runs until Ctrl-C. In another shell" + (" in this directory" if in_checkout else "") + ":",
        f"export PRIVACY_CHECKS_DEMO_URL={q(url)}",
        f"export PRIVACY_CHECKS_DEMO_HTTP_URL={q(http_url)}",
        f"export PRIVACY_CHECKS_DEMO_DATA={q(str(data_dir))}",
        # the token itself stays in its file (mode 0600), out of this output and of `ps`
        f'export {TOKEN_ENV}="$(cat {q(str(token_file))})"',
        f"export PRIVACY_CHECKS_DEMO_REDIS={q(redis)}",
        f"export PRIVACY_CHECKS_DEMO_S3_URL={q(s3_url)}",
        f"export PRIVACY_CHECKS_DEMO_SINK={q(sink_bind)}",
        f"export PRIVACY_CHECKS_DEMO_SMTP={q(smtp_bind)}",
        f"pytest {suites} --privacy-target {profile}",
    ]


def _demo(args) -> int:
    import secrets
    import tempfile
    from urllib.parse import urlsplit

    from .demo.__main__ import TOKEN_ENV
    from .demo.__main__ import main as demo_main

    data = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="privacy-checks-demo-"))
    data.mkdir(parents=True, exist_ok=True)
    token_file = data / "admin-token"
    token = args.admin_token or os.environ.get(TOKEN_ENV) or (
        token_file.read_text(encoding="utf-8").strip() if token_file.is_file() else secrets.token_urlsafe(24))
    _write_secret(token_file, token)
    # The run's capture sink is started later, by pytest, on the address the profile's
    # capture.bind names (PRIVACY_CHECKS_DEMO_SINK): pick a free port for it now.
    sink_url = args.sink_url or f"http://{args.host}:{_free_port(args.host)}"
    sink_bind = urlsplit(sink_url).netloc
    # and for the SMTP capture the demo mails its outbox and newsletter to (capture.smtp.bind)
    smtp_bind = f"{args.host}:{_free_port(args.host)}"
    argv = ["--host", args.host, "--port", str(args.port), "--data-dir", str(data),
            "--admin-token-file", str(token_file), "--sink-url", sink_url, "--smtp-url", f"smtp://{smtp_bind}"]
    for flaw in args.flaw:
        argv += ["--flaw", flaw]
    for fault in args.fault:
        argv += ["--fault", fault]

    def ready(server) -> None:
        lines = demo_instructions(url=server.url, http_url=server.http_url, data_dir=server.data_dir,
                                  token_file=token_file, sink_bind=sink_bind, smtp_bind=smtp_bind,
                                  redis=f"127.0.0.1:{server.redis_server.port}", s3_url=server.s3_server.url)
        print("\n".join(lines), flush=True)

    return int(demo_main(argv, on_ready=ready) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privacy-checks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lint", help="validate a target profile without contacting anything")
    p.add_argument("profile")
    p.set_defaults(func=_lint)
    p = sub.add_parser("cleanup", help="remove subjects that interrupted runs left on a target")
    p.add_argument("--target", required=True, metavar="PROFILE")
    p.add_argument("--ledger", default=None, metavar="URL")
    p.set_defaults(func=_cleanup)
    p = sub.add_parser("census", help="create one subject, show where its data lands, remove it again")
    p.add_argument("--target", default=None, metavar="PROFILE",
                   help="target profile; default: PRIVACY_CHECKS_TARGET, or the built-in demo")
    p.add_argument("--json", action="store_true", help="print the census as JSON")
    p.add_argument("--suggest-exceptions", action="store_true",
                   help="print retention_exceptions stubs for the places found (reasons left for you)")
    p.add_argument("--ledger", default=None, metavar="URL")
    p.add_argument("--seed", default="privacy-checks-census")
    p.add_argument("--demo-flaw", action="append", default=[], metavar="NAME")
    p.set_defaults(func=_census)
    from .report import build

    p = sub.add_parser("report", help="rebuild the compliance report (and the Allure HTML when npx is present)")
    build.add_arguments(p)
    p.set_defaults(func=build.main_report)
    from .report import verify

    p = sub.add_parser("verify", help="check a reports directory against its manifest.json and manifest.sig")
    verify.add_arguments(p)
    p.set_defaults(func=verify.main_verify)
    p = sub.add_parser("demo", help="run the built-in demo target by hand")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--admin-token", help="default: $PRIVACY_CHECKS_DEMO_ADMIN_TOKEN, or a new one; kept in "
                   "<data-dir>/admin-token (mode 0600)")
    p.add_argument("--sink-url", help="where the demo delivers to third parties (default: a free port, where "
                   "the pytest run's capture sink will listen)")
    p.add_argument("--flaw", action="append", default=[])
    p.add_argument("--fault", action="append", default=[])
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PrivacyChecksError as exc:
        print(f"privacy-checks: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
