"""Every privacy-checks option, in one table: its command-line flag, ini key and environment variable.

A value is taken from the first of these that is set: the command line, the environment
variable, the ini file (``[tool.pytest.ini_options]`` in pyproject.toml, pytest.ini, tox.ini,
setup.cfg), then the default. An environment variable set to the empty string counts as unset
(CI systems often define variables they leave empty). Relative paths from the command line or
the environment are relative to the directory pytest was started in; from the ini file, to the
ini file's directory.

Flags carry a ``--privacy-`` prefix so they cannot clash with another plugin's. The short
forms earlier releases used (``--target``, ``--ledger``, ``--waivers``, ...) and the issue's
``--check``/``--clause`` stay as aliases, registered only when no plugin loaded before this
one owns the name.

README.md's option table lists exactly these settings (tests/test_gate.py compares them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    name: str                   # the key code asks for: value(config, "target")
    flag: str                   # canonical command-line flag
    help: str
    env: str
    aliases: tuple[str, ...] = ()
    kind: str = "str"           # str | path | list | bool | float | choice
    default: Any = None
    metavar: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return "privacy_opt_" + self.name

    @property
    def ini(self) -> str:
        return "privacy_" + self.name


SETTINGS: tuple[Setting, ...] = (
    Setting("target", "--privacy-target", "target profile (YAML); without it the built-in demo target starts",
            "PRIVACY_CHECKS_TARGET", ("--target",), kind="path", metavar="PROFILE"),
    Setting("reports", "--privacy-reports", "directory every report of the run goes to (compliance report, "
            "evidence, manifest, privacy-results.json, allure-results/)", "PRIVACY_CHECKS_REPORTS",
            kind="path", default="reports", metavar="DIR"),
    Setting("results", "--privacy-results", "per-check results JSON; empty switches it (and the compliance "
            "report) off", "PRIVACY_CHECKS_RESULTS", kind="path", metavar="PATH",
            default="<reports>/privacy-results.json"),
    Setting("allure", "--privacy-allure", "where Allure results go when privacy checks run; an explicit "
            "--alluredir wins", "PRIVACY_CHECKS_ALLURE", kind="path", metavar="DIR",
            default="<reports>/allure-results"),
    Setting("no_allure", "--no-privacy-allure", "do not write Allure results unless --alluredir is given",
            "PRIVACY_CHECKS_NO_ALLURE", kind="bool", default=False),
    Setting("exit_codes", "--privacy-exit-codes", "exit 0 all held, 1 a promise broken, 3 a check could not be "
            "made, 6 only 'not verified' (with --privacy-fail-not-verified)", "PRIVACY_CHECKS_EXIT_CODES",
            kind="bool", default=False),
    Setting("fail_not_verified", "--privacy-fail-not-verified", "make 'not verified' (a mandatory right the "
            "profile cannot drive) fail the run", "PRIVACY_CHECKS_FAIL_NOT_VERIFIED", ("--fail-not-verified",),
            kind="bool", default=False),
    Setting("check", "--privacy-check", "run only checks whose id matches (fnmatch, e.g. 'ccpa.delete.*'; "
            "repeatable)", "PRIVACY_CHECKS_CHECK", ("--check",), kind="list", metavar="ID"),
    Setting("clause", "--privacy-clause", "run only checks citing this clause or a subsection of it "
            "(e.g. 'ccpa:1798.105'; repeatable)", "PRIVACY_CHECKS_CLAUSE", ("--clause",), kind="list",
            metavar="CLAUSE"),
    Setting("baseline", "--privacy-baseline", "privacy-results.json of an earlier run to compare with "
            "(default: the ledger's last run on the same target)", "PRIVACY_CHECKS_BASELINE", ("--baseline",),
            kind="path", metavar="FILE"),
    Setting("fail_on", "--privacy-fail-on", "'any' broken promise fails the run, or only 'new' ones (newly "
            "broken checks and new places) against the baseline", "PRIVACY_CHECKS_FAIL_ON", ("--fail-on",),
            kind="choice", default="any", choices=("any", "new"), metavar="any|new"),
    Setting("waivers", "--privacy-waivers", "YAML list of waivers: {check: id | clause: 'ccpa:1798.105', "
            "places: ['table:search/*'] (optional), justification, approver, approved: YYYY-MM-DD "
            "(optional), expires: YYYY-MM-DD}", "PRIVACY_CHECKS_WAIVERS", ("--waivers",),
            kind="path", metavar="FILE"),
    Setting("policy", "--privacy-policy", "the privacy policy as data (YAML) whose promises suites/policy "
            "checks; default: the profile's `policy:`, for the demo the MediaPRO policy",
            "PRIVACY_CHECKS_POLICY", ("--policy",), kind="path", metavar="FILE"),
    Setting("ledger", "--privacy-ledger", "SQLAlchemy URL of the ledger", "PRIVACY_CHECKS_LEDGER", ("--ledger",),
            default="sqlite:///.privacy-checks/ledger.sqlite", metavar="URL"),
    Setting("operator", "--privacy-operator", "who runs the checks, named in the compliance report (default: "
            "the CI job the environment names, e.g. GITHUB_RUN_ID or CI_JOB_ID, else the OS user)",
            "PRIVACY_CHECKS_OPERATOR", ("--operator",), metavar="NAME"),
    Setting("assessor", "--privacy-assessor", "the organisation assessing the target, named in the compliance "
            "report and as the OSCAL assessor party (default: none named; OSCAL then names privacy-checks itself)",
            "PRIVACY_CHECKS_ASSESSOR", ("--assessor",), metavar="NAME"),
    Setting("seed", "--privacy-seed", "seed of the synthetic subjects (tokens also take a per-run nonce)",
            "PRIVACY_CHECKS_SEED", default="privacy-checks", metavar="SEED"),
    Setting("lease_seconds", "--privacy-lease-seconds", "how long this run's claim on its subjects lasts "
            "without renewal", "PRIVACY_CHECKS_LEASE", ("--lease-seconds",), kind="float", default=600.0,
            metavar="N"),
    Setting("keep_artifacts", "--privacy-keep-artifacts", "keep the directories command steps wrote into "
            "({{ output_dir }}); removed after the run by default", "PRIVACY_CHECKS_KEEP_ARTIFACTS",
            ("--keep-artifacts",), kind="bool", default=False),
    Setting("demo_flaws", "--privacy-demo-flaw", "switch a flaw on in the built-in demo target (repeatable)",
            "PRIVACY_CHECKS_DEMO_FLAWS", ("--demo-flaw",), kind="list", metavar="NAME"),
    Setting("demo_faults", "--privacy-demo-fault", "make the built-in demo target misbehave (repeatable)",
            "PRIVACY_CHECKS_DEMO_FAULTS", ("--demo-fault",), kind="list", metavar="NAME"),
)
BY_NAME = {s.name: s for s in SETTINGS}

# Read from the environment only, never from a command line or a file.
ENVIRONMENT_ONLY = {
    "PRIVACY_CHECKS_SIGNING_KEY": "Ed25519 private key (PEM) that signs manifest.json: a secret, so never "
                                  "an option (a command line is visible in ps) nor an ini key",
    "PRIVACY_CHECKS_NOW": "judge response deadlines as of this instant (ISO 8601 with a zone) instead of "
                          "the wall clock",
    "PRIVACY_CHECKS_CHROMIUM": "the Chromium suites/web drives (the profile's browser.executable wins)",
}


def _taken(parser: pytest.Parser) -> set[str]:
    """Option strings other plugins registered before us (pytest keeps them in private lists)."""
    names: set[str] = set()
    groups = list(getattr(parser, "_groups", [])) + [getattr(parser, "_anonymous", None)]
    for group in groups:
        for option in getattr(group, "options", []) if group is not None else []:
            names.update(option.names())
    return names


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("privacy-checks", "privacy-checks: prove privacy promises against a live target")
    taken = _taken(parser)
    for s in SETTINGS:
        names = [s.flag, *(a for a in s.aliases if a not in taken)]
        where = f" [ini {s.ini}, env {s.env}]"
        if s.kind == "bool":
            group.addoption(*names, dest=s.dest, action="store_true", default=None, help=s.help + where)
        elif s.kind == "list":
            group.addoption(*names, dest=s.dest, action="append", default=None, metavar=s.metavar,
                            help=s.help + where)
        else:
            group.addoption(*names, dest=s.dest, default=None, metavar=s.metavar,
                            choices=list(s.choices) or None, help=s.help + where)
        parser.addini(s.ini, s.help, type="linelist" if s.kind == "list" else "string")


def _ini_base(config: pytest.Config) -> Path:
    return Path(config.inipath).parent if config.inipath else config.rootpath


def _parse(s: Setting, raw: Any, source: str, base: Path) -> Any:
    if s.kind == "list":
        items = raw if isinstance(raw, list) else str(raw).split(",")
        return [str(i).strip() for i in items if str(i).strip()]
    text = str(raw).strip()
    if s.kind == "bool":
        if text.lower() in TRUE:
            return True
        if text.lower() in FALSE:
            return False
        raise pytest.UsageError(f"privacy-checks: {source} must be true or false, not {text!r}")
    if s.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise pytest.UsageError(f"privacy-checks: {source} must be a number, not {text!r}") from None
    if s.kind == "choice" and text not in s.choices:
        raise pytest.UsageError(f"privacy-checks: {source} must be one of {', '.join(s.choices)}, not {text!r}")
    if s.kind == "path" and text:
        path = Path(os.path.expanduser(text))
        return str(path if path.is_absolute() else base / path)
    return text


def _spelled(config: pytest.Config, s: Setting) -> str:
    """The option as the user typed it (an alias like --policy, or the full --privacy-policy),
    so a message about its value names what is on their command line."""
    for arg in reversed([str(a) for a in config.invocation_params.args]):
        for flag in (s.flag, *s.aliases):
            if arg == flag or arg.startswith(flag + "="):
                return flag
    return s.flag


def lookup(config: pytest.Config, name: str) -> tuple[Any, str]:
    """The setting's value and where it came from ('--flag', 'env NAME', 'ini key' or 'default')."""
    s = BY_NAME[name]
    cli = getattr(config.option, s.dest, None)
    if cli is not None:
        flag = _spelled(config, s)
        return _parse(s, cli, flag, config.invocation_params.dir), flag
    env = os.environ.get(s.env)
    if env is not None and env.strip() != "":
        return _parse(s, env, f"environment variable {s.env}", config.invocation_params.dir), f"env {s.env}"
    try:
        ini = config.getini(s.ini)
    except ValueError:  # not registered (the plugin was loaded too late for options)
        ini = None
    if ini not in (None, "", []):
        return _parse(s, ini, f"ini key {s.ini}", _ini_base(config)), f"ini {s.ini}"
    default = [] if s.kind == "list" else s.default
    if s.kind == "path" and isinstance(default, str) and default and not default.startswith("<"):
        default = str(config.rootpath / default)
    elif isinstance(default, str) and default.startswith("<"):
        default = None  # derived from another setting by the code that reads it
    return default, "default"


def value(config: pytest.Config, name: str) -> Any:
    return lookup(config, name)[0]
