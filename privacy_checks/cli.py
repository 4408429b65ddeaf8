"""The `privacy-checks` command: lint a profile, take a census, clean up orphans, run the demo."""

from __future__ import annotations

import argparse
import sys

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


def _demo(args) -> int:
    from .demo.__main__ import main as demo_main

    argv = ["--host", args.host, "--port", str(args.port)]
    if args.data_dir:
        argv += ["--data-dir", args.data_dir]
    if args.admin_token:
        argv += [f"--admin-token={args.admin_token}"]
    if args.sink_url:
        argv += ["--sink-url", args.sink_url]
    for flaw in args.flaw:
        argv += ["--flaw", flaw]
    for fault in args.fault:
        argv += ["--fault", fault]
    return int(demo_main(argv) or 0)


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
    p = sub.add_parser("demo", help="run the built-in demo target by hand")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--admin-token")
    p.add_argument("--sink-url")
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
