"""pytest wiring for policies: the `--policy FILE` option and the `privacy_policy` fixture.

A second `pytest11` entry point (beside plugin.py), loaded into every pytest run: nothing
here reads a file unless --policy is given or a test asks for the policy.
Which policy: --policy (or PRIVACY_CHECKS_POLICY), else the target profile's `policy:`,
else, for the built-in demo target, the MediaPRO policy it implements.
"""

from __future__ import annotations

import os

import pytest

_POLICY = pytest.StashKey["object"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("privacy-checks")
    group.addoption("--policy", default=os.environ.get("PRIVACY_CHECKS_POLICY"), metavar="FILE",
                    help="the privacy policy as data (YAML) whose promises suites/policy checks; default: the "
                         "target profile's `policy:`, or for the demo target the MediaPRO policy")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("policy", None)
    if path:
        from .policy import PolicyError, load_policy

        try:
            config.stash[_POLICY] = load_policy(path)
        except PolicyError as exc:
            raise pytest.UsageError(f"--policy: {exc}") from None


@pytest.fixture(scope="session")
def privacy_policy(request: pytest.FixtureRequest, privacy_run):
    """The policy whose promises are checked (see the module docstring for which one)."""
    from .policy import PolicyError, default_policy_path, load_policy

    loaded = request.config.stash.get(_POLICY, None)
    if loaded is not None:
        return loaded
    if privacy_run.target_path is None:
        path = default_policy_path()
    else:
        path = privacy_run.profile.policy
        if path is None:
            raise PolicyError(f"no policy to check: pass --policy FILE, or declare `policy:` in the target "
                              f"profile {privacy_run.target_path}")
    request.config.stash[_POLICY] = policy = load_policy(path)
    return policy


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    policy = config.stash.get(_POLICY, None)
    if policy is None or hasattr(config, "workerinput"):
        return
    from .policy import policy_findings

    findings = policy_findings(policy)
    if not findings:
        return
    terminalreporter.section(f"findings about the policy itself ({policy.path.name})")
    for f in findings:
        terminalreporter.line(f"- {f['message']} [{', '.join(f['clauses'])}]")
