"""Allure results for privacy runs: switched on when a privacy check is collected, plus the
run's environment.properties, executor.json and categories.json.

allure-pytest only writes results when `--alluredir` is given, and it decides in its own
`pytest_configure`, before anything is collected. Turning it on there for every run would
make every pytest run in the environment (this plugin is loaded into all of them) write an
Allure directory; so `enable_allure` repeats allure-pytest's own wiring once collection
shows a privacy check, with the same classes allure-pytest registers.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

EXECUTOR_NAME = "privacy-checks"

# Matched on the outcome: each privacy check's status message starts with it in brackets
# (allure_result.py), whatever the message says after it. Allure puts a result in the first
# category that matches; "not verified" comes before "promise broken" because
# --privacy-fail-not-verified makes it a failure.
CATEGORIES = [
    {"name": "not verified", "matchedStatuses": ["skipped", "failed"], "messageRegex": r"(?s)\[not verified\].*"},
    {"name": "promise broken", "matchedStatuses": ["failed"], "messageRegex": r"(?s)\[failed\].*"},
    {"name": "could not be checked", "matchedStatuses": ["broken", "failed"], "messageRegex": r"(?s)\[error\].*"},
    {"name": "waived", "matchedStatuses": ["skipped"], "messageRegex": r"(?s)\[waived\].*"},
    {"name": "not applicable", "matchedStatuses": ["skipped"], "messageRegex": r"(?s)\[not applicable\].*"},
]


def allure_enabled(config) -> bool:
    return bool(getattr(config.option, "allure_report_dir", None))


def enable_allure(config, directory: Path, *, clean: bool = False) -> str | None:
    """Register allure-pytest's listener writing to `directory`; returns a problem, or None."""
    if allure_enabled(config) or config.pluginmanager.has_plugin("allure_listener"):
        return None
    try:
        import allure_commons
        from allure_commons.logger import AllureFileLogger
        from allure_pytest.listener import AllureListener
        from allure_pytest.plugin import cleanup_factory
    except ImportError as exc:
        return f"Allure results are off: allure-pytest could not be wired in ({exc}); pass --alluredir DIR"
    directory.mkdir(parents=True, exist_ok=True)
    config.option.allure_report_dir = str(directory)
    listener = AllureListener(config)
    config.pluginmanager.register(listener, "allure_listener")
    allure_commons.plugin_manager.register(listener)
    config.add_cleanup(cleanup_factory(listener))
    file_logger = AllureFileLogger(str(directory), clean)
    allure_commons.plugin_manager.register(file_logger)
    config.add_cleanup(cleanup_factory(file_logger))
    return None


def is_ours(directory: Path) -> bool:
    """True when a previous privacy run wrote this directory (so it may be emptied)."""
    try:
        return json.loads((directory / "executor.json").read_text()).get("name") == EXECUTOR_NAME
    except (OSError, ValueError, AttributeError):
        return False


def empty_directory(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)


def _escape(text: str, *, key: bool = False) -> str:
    text = str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    if key:
        for ch in " =:#!":
            text = text.replace(ch, "\\" + ch)
    return text


def write_environment(directory: Path, *, target: dict, started_at: str, framework_version: str,
                      extra: dict | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    props = {
        "target.name": target.get("name") or "unknown",
        "target.base_url": target.get("base_url") or "unknown",
        "framework.version": f"privacy-checks {framework_version}",
        "seed": target.get("seed") or "",
        "run.nonce": target.get("nonce") or "",
        "run.started_at": started_at,
    }
    if target.get("flaws"):
        props["demo.flaws"] = ",".join(target["flaws"])
    props.update(extra or {})
    lines = [f"{_escape(k, key=True)}={_escape(v)}" for k, v in props.items()]
    (directory / "environment.properties").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_executor(directory: Path, *, target: dict, started_at: str) -> None:
    nonce = target.get("nonce") or datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    data = {"name": EXECUTOR_NAME, "type": "pytest", "reportName": "privacy-checks",
            "buildName": f"privacy-checks run {nonce} against {target.get('name') or 'unknown'}",
            "buildOrder": int(datetime.fromisoformat(started_at).timestamp()) if started_at else None}
    # In CI, link the report to the pipeline run that produced it.
    if os.environ.get("GITHUB_RUN_ID") and os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        data["buildUrl"] = f"{server}/{os.environ['GITHUB_REPOSITORY']}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
    elif os.environ.get("CI_PIPELINE_URL"):
        data["buildUrl"] = os.environ["CI_PIPELINE_URL"]
    (directory / "executor.json").write_text(json.dumps({k: v for k, v in data.items() if v is not None},
                                                        indent=2), encoding="utf-8")


def write_categories(directory: Path) -> None:
    (directory / "categories.json").write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")


def write_all(directory: Path, *, target: dict, started_at: str, framework_version: str) -> None:
    write_environment(directory, target=target, started_at=started_at, framework_version=framework_version)
    write_executor(directory, target=target, started_at=started_at)
    write_categories(directory)
