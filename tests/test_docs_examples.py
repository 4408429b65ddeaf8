"""Every YAML example in docs/ lints clean: a reader who copies one gets a working start.

A block that is a whole profile (it has `name`) is linted as it is; a section (a mapping) is
merged into a small base profile; a list of steps becomes the steps of an operation. Any
`${VAR}` is given a value, as the user's environment would.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from privacy_checks.profile import _Loader, lint

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").rglob("*.md"))
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)

BASE = {
    "name": "docs-example",
    "base_url": "https://api.example.com",
    "allowed_hosts": ["api.example.com", "*.example.com", "127.0.0.1"],
    "auth": {"admin": {"type": "bearer", "token": "${ADMIN_TOKEN}"},
             "subject": {"type": "bearer", "token": "{{ captured.token }}"}},
    "subject": {"extra_fields": ["message", "support_ticket"],
                "strategies": {"message": {"strategy": "content"}, "support_ticket": {"strategy": "content"}}},
    "operations": {
        "create_subject": {"steps": [{"method": "POST", "path": "/users", "auth": "admin",
                                      "json": {"email": "{{ subject.email }}"}, "capture": {"user_id": "json.id"}}]},
        "login": {"steps": [{"method": "POST", "path": "/login",
                             "json": {"username": "{{ subject.username }}", "password": "{{ subject.password }}"},
                             "capture": {"token": "json.token"}}]},
    },
    "stores": [{"name": "app", "url": "sqlite:////tmp/app.sqlite"}, {"name": "shop", "url": "sqlite:////tmp/shop.db"},
               {"name": "logs", "files": ["/tmp/logs/*.log"], "expect_subject": False},
               {"name": "cache", "url": "redis://cache.internal:6379/0"}],
}


class _AnyEnv(dict):
    """Every variable is set: the examples are checked for everything but the environment."""

    def __contains__(self, key) -> bool:
        return True

    def __getitem__(self, key) -> str:
        return "value-of-" + key.lower()


def _examples() -> list:
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text[:m.start()].count("\n") + 2
            out.append(pytest.param(m.group(1), id=f"{doc.relative_to(ROOT)}:{line}"))
    return out


def _merge(fragment) -> dict:
    profile = copy.deepcopy(BASE)
    if isinstance(fragment, list) and all(isinstance(i, dict) and {"url", "files", "lake"} & set(i) for i in fragment):
        fragment = {"stores": fragment}  # a list of stores
    elif isinstance(fragment, list) and "captured.request_id" in repr(fragment):
        # steps that read a request's id (a verification code by mail) are fetch_code's, after
        # request_access captured it, as a reader would place them
        profile["operations"]["request_access"] = {"steps": [{"method": "POST", "path": "/privacy-requests",
                                                              "auth": "subject", "json": {"type": "access"},
                                                              "capture": {"request_id": "json.id"}}]}
        profile["operations"]["fetch_code"] = {"steps": fragment}
        return profile
    elif isinstance(fragment, list):
        profile["operations"]["activity"] = {"steps": fragment}
        return profile
    if "name" in fragment:
        return fragment
    for key, value in fragment.items():
        if key in ("stores", "sinks", "retention_exceptions"):
            named = {item.get("name"): item for item in profile.get(key, []) if isinstance(item, dict)}
            kept = [item for item in profile.get(key, []) if item.get("name") not in
                    {v.get("name") for v in value if isinstance(v, dict)}]
            profile[key] = kept + value if named else value
        elif key == "operations" or key == "subject":
            profile[key] = {**profile.get(key, {}), **value}
        else:
            profile[key] = value
    return profile


def test_docs_have_examples():
    assert len(_examples()) >= 20


@pytest.mark.parametrize("block", _examples())
def test_every_yaml_example_in_the_docs_lints_clean(tmp_path, block):
    fragment = yaml.load(block, Loader=_Loader)
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(_merge(fragment), sort_keys=False, allow_unicode=True))
    assert lint(path, _AnyEnv()) == [], block


def test_the_operations_table_is_the_one_lint_checks_against():
    from privacy_checks.operations import USES

    text = (ROOT / "docs" / "profile.md").read_text()
    section = text[text.index("## Operations the suites run"):text.index("## Checking a profile")]
    rows = {m.group(1): [c.strip() for c in m.group(2).split("|")]
            for m in re.finditer(r"^\| `(\w+)` \|(.*)\|$", section, re.M)}
    assert set(rows) == set(USES)
    for name, use in USES.items():
        after = rows[name][1]
        if use.after is None:
            assert after == "no subject", name
        elif not use.after:
            assert after.startswith("nothing"), name
        else:
            assert after.split(" (")[0] == ", ".join(use.after), name
        assert ("from the ledger" in after) == use.from_ledger, name
        for p in use.params:
            assert (f"params.{p}" if p != "<field>" else "params.<field>") in rows[name][2], name
        for r in use.reads:
            assert f"`{r.lstrip('!')}`" in rows[name][3], (name, r)
            assert ("(required)" in rows[name][3]) == any(x.startswith("!") for x in use.reads), name
