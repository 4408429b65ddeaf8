"""Which collected tests are privacy checks, their markers, and which of them a run selects.

A test is a privacy check when it carries ``@pytest.mark.check(id)`` and uses the framework's
fixtures (each of them depends on ``privacy_run``). Only privacy checks have their markers
validated, are selected by ``--privacy-check``/``--privacy-clause``, get Allure labels and JUnit
properties, and are reported. The plugin is installed into every pytest run of an environment:
another project's own ``@pytest.mark.check("smoke")`` or ``gdpr`` marker is none of its business.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import clauses, outcomes

RUN_FIXTURE = "privacy_run"
CHECK = "check"
FAMILIES = clauses.MARKER_FAMILIES
SUITES_PACKAGE = "privacy_checks_suites"

# JUnit <property> names a CI UI can show beside each testcase.
PROPERTY_CHECK = "privacy_check"
PROPERTY_CLAUSE = "privacy_clause"


def is_privacy_check(item: pytest.Item) -> bool:
    return item.get_closest_marker(CHECK) is not None and RUN_FIXTURE in getattr(item, "fixturenames", ())


def check_id(item: pytest.Item) -> str | None:
    """The check's stable id; None for anything that is not a privacy check."""
    if not is_privacy_check(item):
        return None
    mark = item.get_closest_marker(CHECK)
    return str(mark.args[0]) if mark is not None and mark.args else None


def citations(item: pytest.Item) -> list[tuple[str, str]]:
    """(family, reference) pairs as the check's clause markers write them."""
    return [(m.name, str(a)) for m in item.iter_markers() if m.name in FAMILIES for a in m.args]


def prepare(items: list[pytest.Item]) -> list[str]:
    """Validate the markers of every privacy check and label it for Allure and JUnit; return
    the problems (one line each), so the run can stop before anything is touched."""
    problems = []
    for item in items:
        if RUN_FIXTURE not in getattr(item, "fixturenames", ()):
            continue
        refs = []
        for family in FAMILIES:
            for mark in item.iter_markers(name=family):
                try:
                    refs += clauses.validate_marker(family, mark.args)
                except ValueError as exc:
                    problems.append(f"{item.nodeid}: {exc}")
        check = item.get_closest_marker(CHECK)
        if check is None:
            if refs:
                problems.append(f"{item.nodeid}: a check citing a clause needs a stable id: "
                                "@pytest.mark.check('...')")
            continue
        try:
            cid = outcomes.validate_check_id(check.args[0] if check.args else "")
        except ValueError as exc:
            problems.append(f"{item.nodeid}: {exc}")
            continue
        item.user_properties.append((PROPERTY_CHECK, cid))
        item.user_properties += [(PROPERTY_CLAUSE, r.id) for r in refs]
        if refs:
            labels = clauses.allure_labels(refs)
            for kind in ("epic", "feature", "story", "severity"):
                values = labels.get(kind)
                for value in values if isinstance(values, list | tuple) else [values] if values else []:
                    item.add_marker(pytest.mark.allure_label(value, label_type=kind))
            for url, name in labels.get("links", []):
                item.add_marker(pytest.mark.allure_link(url, name=name, link_type="link"))
        item.add_marker(pytest.mark.allure_label(cid, label_type="tag"))
    return problems


def select(items: list[pytest.Item], patterns: list[str], clause_texts: list[str]
           ) -> tuple[list[pytest.Item], list[pytest.Item], list[str]]:
    """Split items into (selected, deselected) by check-id patterns (fnmatch) and clauses.

    Within one kind the values are alternatives; given both kinds, a check must match each.
    Returns the problems too: a malformed clause, or a pattern or clause no collected check
    matches (a typo must not quietly shrink a release gate to fewer checks)."""
    problems = []
    selectors = []
    for text in clause_texts:
        try:
            selectors.append(clauses.clause_selector(text))
        except clauses.ClauseError as exc:
            problems.append(f"--privacy-clause: {exc}")
    if problems or not (patterns or selectors):
        return list(items), [], problems
    checks = {item: check_id(item) for item in items}
    used_patterns: set[str] = set()
    used_clauses: set[str] = set()
    selected, deselected = [], []
    for item in items:
        cid = checks[item]
        ok = cid is not None
        if ok and patterns:
            hit = [p for p in patterns if fnmatch.fnmatchcase(cid, p)]
            used_patterns.update(hit)
            ok = bool(hit)
        if cid is not None and selectors:
            hit_c = [s.text for s in selectors if s.selects(citations(item))]
            used_clauses.update(hit_c)
            ok = ok and bool(hit_c)
        (selected if ok else deselected).append(item)
    known = sorted({c for c in checks.values() if c})
    for p in patterns:
        if p not in used_patterns:
            problems.append(f"--privacy-check {p!r} matches none of the {len(known)} collected checks"
                            + (f" ({_sample(known)})" if known else ""))
    for s in selectors:
        if s.text not in used_clauses:
            problems.append(f"--privacy-clause {s.text!r}: none of the {len(known)} collected checks cites it")
    return selected, deselected, problems


def _sample(ids: list[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (f", … {len(ids) - n} more" if len(ids) > n else "")


def stop(config: pytest.Config, items: list[pytest.Item], message: str) -> None:
    """Stop the run before any test touches the target: a usage error on the controller.

    On a pytest-xdist worker a UsageError reaches the controller as a crash with the message
    lost: deselect everything instead and let a warning carry the reason."""
    if not hasattr(config, "workerinput"):
        raise pytest.UsageError(message)
    config.hook.pytest_deselected(items=list(items))
    items[:] = []
    warnings.warn(pytest.PytestWarning(message), stacklevel=1)


@dataclass(frozen=True)
class DefinedCheck:
    """A check as the shipped suites' source defines it: which suite, file and test, citing what."""

    check_id: str
    suite: str  # the suite's directory: ccpa, gdpr, policy, transport, web
    file: str  # relative to the suites' directory: ccpa/test_right_to_delete.py
    test: str  # the test function's name
    clauses: tuple[str, ...]  # "family:reference", as the results spell them


@functools.cache
def defined_checks() -> dict[str, DefinedCheck]:
    """Every check the shipped suites define, read from their source (nothing is imported), so
    that a run can name the checks of its suites it did not run, and a run of one suite can tell
    "not in this run" from "no such check"."""
    spec = importlib.util.find_spec(SUITES_PACKAGE)
    found: dict[str, DefinedCheck] = {}
    for root in (spec.submodule_search_locations or []) if spec else []:
        for path in sorted(Path(root).rglob("test_*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError):
                continue
            rel = path.relative_to(root).as_posix()
            module_marks = _module_marks(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    check = _defined_check(node, rel, module_marks)
                    if check is not None:
                        found.setdefault(check.check_id, check)
    return found


def _marker(decorator: ast.expr) -> tuple[str, list[str]] | None:
    """`@pytest.mark.NAME("a", "b")` as (NAME, ["a", "b"]); None for anything else."""
    if not (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)):
        return None
    inner = decorator.func.value
    if not (isinstance(inner, ast.Attribute) and inner.attr == "mark"):
        return None
    args = [a.value for a in decorator.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return decorator.func.attr, args


def _module_marks(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """The markers of a module's `pytestmark = [...]` (or a single marker)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            values = node.value.elts if isinstance(node.value, ast.List | ast.Tuple) else [node.value]
            return [m for m in map(_marker, values) if m is not None]
    return []


def _defined_check(node: ast.FunctionDef | ast.AsyncFunctionDef, rel: str,
                   module_marks: list[tuple[str, list[str]]]) -> DefinedCheck | None:
    marks = [m for m in map(_marker, node.decorator_list) if m is not None] + module_marks
    ids = [args[0] for name, args in marks if name == CHECK and args]
    if not ids:
        return None
    cited = tuple(f"{name}:{a}" for name, args in marks if name in FAMILIES for a in args)
    return DefinedCheck(check_id=ids[0], suite=rel.split("/", 1)[0], file=rel, test=node.name, clauses=cited)


def defined_check_ids() -> frozenset[str]:
    return frozenset(defined_checks())
