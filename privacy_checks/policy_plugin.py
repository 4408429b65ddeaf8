"""pytest wiring for policies: the `--privacy-policy FILE` setting and the `privacy_policy` fixture.

Registered by plugin.py, so loaded into every pytest run: nothing here reads a file unless a
policy is given (settings.py: option, PRIVACY_CHECKS_POLICY or ini key) or a test asks for it.
Which policy: that setting, else the target profile's `policy:`, else, for the built-in demo
target, the MediaPRO policy it implements.
"""

from __future__ import annotations

import pytest

_POLICY = pytest.StashKey["object"]()


def pytest_configure(config: pytest.Config) -> None:
    from .settings import lookup

    path, source = lookup(config, "policy")
    if path:
        from .policy import PolicyError, load_policy

        try:
            config.stash[_POLICY] = load_policy(path)
        except PolicyError as exc:
            raise pytest.UsageError(f"{source}: {exc}") from None


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
