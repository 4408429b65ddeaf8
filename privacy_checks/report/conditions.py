"""Under what conditions a run judged: which profile (file and SHA-256), what it examined and
what it excluded, which framework build, on which host, run by whom, under which ledger run
id, and as of which instant.

An auditor putting a report into working papers must be able to say what was in scope and
reproduce the run; a report that reads "on 2026-11-29" while PRIVACY_CHECKS_NOW made it judge
deadlines as of another day misstates its own result. These facts go into the results file's
``scope`` (report/scope.py holds the command line and selection) and from there into the
compliance report's run box.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import socket
import subprocess
from pathlib import Path

# What no run of this framework examines, whatever the profile says: stated in every report so a
# pass is never read as covering them (docs/profile.md: stores, sinks, capture).
NOT_EXAMINED = (
    "backups, snapshots, replicas and archives of the target's data, unless the profile declares "
    "them as stores",
    "what a database keeps on disk but no longer returns to SQL (rows left in free pages or a "
    "write-ahead log after a DELETE, dead tuples before VACUUM) and the database's own logs",
    "the recipients' own systems: a recipient is judged by what the target sends to the capture "
    "servers standing in for it (and by the rows of a sink's declared store/table), never by what "
    "the recipient itself keeps",
    "deliveries the target makes anywhere but the run's capture servers (HTTP and SMTP): a "
    "recipient the target reaches directly is not seen",
    "any database, schema, table, column, file, cache or queue the profile does not declare as a "
    "store, and whatever its stores' exclude_tables / exclude_columns / include_tables / schemas "
    "leave out",
)

# CI systems' job identifiers, first match wins: (variable, how to name the job).
_CI_JOBS = (
    ("GITHUB_RUN_ID", lambda env: f"GitHub Actions run {env['GITHUB_RUN_ID']}"
     + (f" ({env['GITHUB_REPOSITORY']})" if env.get("GITHUB_REPOSITORY") else "")
     + (f", started by {env['GITHUB_ACTOR']}" if env.get("GITHUB_ACTOR") else "")),
    ("CI_JOB_ID", lambda env: f"CI job {env['CI_JOB_ID']}"
     + (f" ({env['CI_PROJECT_PATH']})" if env.get("CI_PROJECT_PATH") else "")
     + (f", started by {env['GITLAB_USER_LOGIN']}" if env.get("GITLAB_USER_LOGIN") else "")),
    ("BUILD_TAG", lambda env: f"CI build {env['BUILD_TAG']}"),
)


def sha256_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def profile_scope(profile) -> dict:
    """The profile file and its digest, what it declares, and what it leaves out."""
    stores = []
    for s in profile.stores:
        narrowed = {k: s[k] for k in ("schemas", "include_tables", "exclude_tables", "exclude_columns")
                    if s.get(k) and s.get(k) != ["*"]}
        if narrowed:
            stores.append({"store": s["name"], **narrowed})
    path = Path(profile.path)
    return {
        "path": str(path.resolve()),
        "sha256": sha256_of(path),
        "declared": {"stores": [s["name"] for s in profile.stores],
                     "recipients": [s["name"] for s in profile.sinks]},
        "exclusions": {"stores": stores, "not_offered": profile.not_offered, "lacks": profile.lacks},
        "severity": profile.severity,
    }


def operator(given: str | None, env=os.environ) -> dict:
    """Who ran the checks: the option, else the CI job the environment names, else the OS user."""
    if given:
        return {"name": given, "source": "--privacy-operator"}
    for var, describe in _CI_JOBS:
        if env.get(var, "").strip():
            return {"name": describe(env), "source": f"environment ({var})"}
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container's anonymous uid)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return {"name": user, "source": "the operating system's user"}


def framework_build() -> dict:
    """The framework's version and, when it runs from a git checkout, the commit (and whether
    the checkout had uncommitted changes to tracked files)."""
    from .. import __version__

    root = Path(__file__).resolve().parents[2]
    out: dict = {"version": __version__, "commit": None, "modified": None}

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top and Path(top).resolve() == root:  # the package's own checkout, not a project it is installed in
        out["commit"] = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
        out["modified"] = bool(status) if status is not None else None
    return out


def clock(env=os.environ) -> dict | None:
    """The clock override (PRIVACY_CHECKS_NOW) deadlines were judged by, or None for the wall clock."""
    from ..flows.deadlines import ENV_NOW, now_from_env
    from ..outcomes import CheckError

    raw = env.get(ENV_NOW, "").strip()
    if not raw:
        return None
    try:
        as_of = now_from_env(env).isoformat(timespec="seconds")
    except CheckError as exc:
        return {"env": ENV_NOW, "value": raw, "as_of": None, "problem": str(exc)}
    return {"env": ENV_NOW, "value": raw, "as_of": as_of}


def of_run(*, target: dict, operator_option: str | None, ledger_runs: list[str], examined: dict,
           assessor: str | None = None) -> dict:
    """The run's conditions, for the results file's ``scope``."""
    profile = dict(target.get("profile") or {})
    return {
        "profile": {k: profile.get(k) for k in ("path", "sha256", "declared")} if profile else None,
        "examined": examined,
        "exclusions": {**(profile.get("exclusions") or {}), "never_examined": list(NOT_EXAMINED)},
        "framework": framework_build(),
        "host": socket.gethostname(),
        "operator": operator(operator_option),
        "assessor": {"name": assessor, "source": "--privacy-assessor"} if assessor else None,
        "ledger_runs": sorted(r for r in ledger_runs if r),
        "clock": clock(),
    }
