"""A privacy policy as data: loading it, what it says it collects, its own contradictions, and
the verdict on each of its promises after a run.

A policy file (schema: ``privacy_checks/schemas/policy.schema.json``; the MediaPRO policy ships
as ``privacy_checks/data/policy-mediapro-2019.yaml``) quotes each promise and names the checks
that verify it, or says why none can (``manual``). Errors name the file and the path inside it
(``mediapro.yaml: promises[3].checks[0]: ...``), every problem at once.
"""

from __future__ import annotations

import calendar
import json
import os
from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .errors import PrivacyChecksError

DEFAULT_POLICY = "policy-mediapro-2019.yaml"

# Cal. Civ. Code §1798.140(v)(1)(A)-(L)
CATEGORY_TITLES = {
    "A": "Identifiers", "B": "Customer records (Cal. Civ. Code §1798.80(e))",
    "C": "Protected classification characteristics", "D": "Commercial information", "E": "Biometric information",
    "F": "Internet or other electronic network activity", "G": "Geolocation data", "H": "Sensory data",
    "I": "Professional or employment-related information", "J": "Non-public education information",
    "K": "Inferences drawn from personal information", "L": "Sensitive personal information",
}

VERIFIED, BROKEN, MANUAL, NOT_CHECKED = "verified", "broken", "manual", "not checked"


class PolicyError(PrivacyChecksError):
    """A policy file is unreadable or invalid."""


def default_policy_path() -> Path:
    """The MediaPRO policy the demo target implements."""
    return Path(str(resources.files("privacy_checks.data").joinpath(DEFAULT_POLICY)))


class Policy:
    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def __repr__(self) -> str:
        return f"Policy({self.id!r}, {self.path})"

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def title(self) -> str:
        return self.data["title"]

    @property
    def served_at(self) -> str | None:
        return self.data.get("served_at")

    @property
    def promises(self) -> list[dict]:
        return list(self.data["promises"])

    @property
    def california(self) -> dict:
        return self.data.get("california") or {}

    @property
    def categories(self) -> dict[str, dict]:
        return dict(self.california.get("categories") or {})

    def collected(self, category: str) -> bool | None:
        """What the policy's table says of a category: True (YES), False (NO), None (not addressed)."""
        row = self.categories.get(category)
        return None if row is None else bool(row["collected"])

    def category_title(self, category: str) -> str:
        row = self.categories.get(category) or {}
        return (row.get("title") or CATEGORY_TITLES.get(category, category)).rstrip(".")

    def field_lists(self) -> list[dict]:
        return list(self.data.get("field_lists") or [])

    def listed_fields(self) -> dict[str, list[str]]:
        """Subject field -> how the policy's field lists name it ("lms-users: Phone number")."""
        out: dict[str, list[str]] = {}
        for lst in self.field_lists():
            for item in lst["fields"]:
                if item.get("subject_field"):
                    out.setdefault(item["subject_field"], []).append(f"{lst['id']}: {item['quote']}")
        return out

    def check_ids(self) -> set[str]:
        return {c for p in self.promises for c in p.get("checks") or []}

    def last_modified(self) -> date:
        """The latest day the policy's stated revision date can mean (a month means its last day)."""
        return _latest_day(self.data["last_modified"])

    def last_updated(self) -> date:
        """The most recent of the policy's own date and its California addendum's review date."""
        dates = [self.last_modified()]
        if self.california.get("last_reviewed"):
            dates.append(date.fromisoformat(self.california["last_reviewed"]))
        return max(dates)


def _latest_day(text: str) -> date:
    parts = [int(p) for p in text.split("-")]
    if len(parts) == 2:
        return date(parts[0], parts[1], calendar.monthrange(parts[0], parts[1])[1])
    return date(*parts)


# -- loading -----------------------------------------------------------------------------------

@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(resources.files("privacy_checks.schemas").joinpath("policy.schema.json").read_text())
    return Draft202012Validator(schema)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Load and validate a policy file; raises PolicyError naming the file and every bad path."""
    policy, messages = _load(Path(path))
    if messages:
        raise PolicyError("\n".join(messages))
    assert policy is not None
    return policy


def lint_policy(path: str | os.PathLike[str]) -> list[str]:
    return _load(Path(path))[1]


def _format_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(root)"


def _load(path: Path) -> tuple[Policy | None, list[str]]:
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"{fname}: cannot read the policy: not UTF-8 text (byte {exc.start})"]
    except OSError as exc:
        return None, [f"{fname}: cannot read the policy: {exc.strerror or exc}"]
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return None, [f"{fname}: {where}not valid YAML: {exc.problem}"]
    except yaml.YAMLError as exc:
        return None, [f"{fname}: not valid YAML: {exc}"]
    if not isinstance(data, dict):
        found = "an empty file" if data is None else f"a {type(data).__name__}"
        return None, [f"{fname}: (root): a policy is a mapping (id, title, promises, ...), found {found}"]
    messages = []
    for err in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        message = err.message
        if err.validator == "oneOf" and err.absolute_path and "promises" in err.absolute_path:
            message = "a promise names the checks that verify it or says why it is manual, exactly one of the two"
        elif err.validator == "anyOf":
            message = "a listed field names a subject_field or its categories"
        messages.append(f"{fname}: {_format_path(err.absolute_path)}: {message}")
    if not messages:
        messages = _semantic_problems(fname, data)
    return (None, messages) if messages else (Policy(path.absolute(), data), [])


def _semantic_problems(fname: str, data: dict) -> list[str]:
    from . import clauses
    from .subjects import category_table

    problems = []
    seen: dict[str, int] = {}
    table = category_table()
    for i, promise in enumerate(data["promises"]):
        where = f"{fname}: promises[{i}]"
        if promise["id"] in seen:
            problems.append(f"{where}.id: {promise['id']!r} is also promises[{seen[promise['id']]}]")
        seen.setdefault(promise["id"], i)
        for j, ref in enumerate(promise.get("clauses") or []):
            family, _, clause = ref.partition(":")
            try:
                clauses.resolve(family, clause.strip(), marker="this policy")
            except ValueError as exc:
                problems.append(f"{where}.clauses[{j}]: {exc}")
    for i, lst in enumerate(data.get("field_lists") or []):
        for j, item in enumerate(lst["fields"]):
            name = item.get("subject_field")
            if name and name not in table:
                problems.append(f"{fname}: field_lists[{i}].fields[{j}].subject_field: {name!r} is not in the "
                                f"field-to-category table ({', '.join(sorted(table))})")
    table_cats = set((data.get("california") or {}).get("categories") or {})
    for key in ("disclosed_for_business_purpose", "sold"):
        for j, cat in enumerate(((data.get("california") or {}).get(key) or {}).get("categories") or []):
            if table_cats and cat not in table_cats:
                problems.append(f"{fname}: california.{key}.categories[{j}]: category {cat} is not in the "
                                "policy's category table")
    return problems


# -- what a field means --------------------------------------------------------------------------

def field_categories(field: str) -> list[str]:
    """CCPA categories of a subject field from the reviewed table; sensitive fields are also L."""
    from .subjects import category_table

    row = category_table().get(field) or {}
    cats = list(row.get("categories") or [])
    if row.get("sensitive") and "L" not in cats:
        cats.append("L")
    return cats


# -- the policy's own contradictions -------------------------------------------------------------

def months_between(earlier: date, later: date) -> int:
    months = (later.year - earlier.year) * 12 + later.month - earlier.month
    return months - (1 if later.day < earlier.day else 0)


def policy_findings(policy: Policy, today: date | None = None) -> list[dict]:
    """What is wrong with the policy text itself, whatever the target does.

    Each finding: id, message, quotes (the policy's words that conflict), clauses.
    """
    today = today or date.today()
    findings: list[dict] = []
    cal = policy.california
    table_quote = cal.get("categories_quote", "the category table")

    disclosed = cal.get("disclosed_for_business_purpose") or {}
    for cat in disclosed.get("categories") or []:
        if policy.collected(cat) is False:
            findings.append({
                "id": f"disclosed-but-not-collected-{cat.lower()}",
                "message": (f"category {cat} ({policy.category_title(cat)}) is marked NO (not collected) in the "
                            f"category table, yet listed as disclosed for a business purpose; a business cannot "
                            "disclose what it does not collect, so one of the two statements is false"),
                "quotes": [table_quote, disclosed.get("quote", "")],
                "clauses": ["ccpa:1798.130(a)(5)(B)", "ccpa:1798.130(a)(5)(C)"],
            })
    sold = cal.get("sold") or {}
    for cat in sold.get("categories") or []:
        if policy.collected(cat) is False:
            findings.append({
                "id": f"sold-but-not-collected-{cat.lower()}",
                "message": f"category {cat} is marked not collected, yet listed as sold",
                "quotes": [table_quote, sold.get("quote", "")],
                "clauses": ["ccpa:1798.130(a)(5)(C)"],
            })

    updated = policy.last_updated()
    age = months_between(updated, today)
    if age >= 12:
        findings.append({
            "id": "not-updated-in-12-months",
            "message": (f"the policy was last updated {updated.isoformat()} "
                        f"({policy.data.get('last_modified_quote') or policy.data['last_modified']}"
                        + (f"; California addendum last reviewed {cal['last_reviewed']}" if cal.get("last_reviewed")
                           else "")
                        + f"), {age} months before {today.isoformat()}; Cal. Civ. Code §1798.130(a)(5) requires "
                        "the online privacy policy to be updated at least once every 12 months"),
            "quotes": [policy.data.get("last_modified_quote") or policy.data["last_modified"]],
            "clauses": ["ccpa:1798.130(a)(5)"],
        })

    if policy.categories:
        for item in policy.data.get("automatic_collection") or []:
            for cat in item["categories"]:
                if policy.collected(cat) is False:
                    findings.append({
                        "id": f"collected-automatically-but-marked-no-{cat.lower()}",
                        "message": (f"the policy says it collects, automatically, what falls in category {cat} "
                                    f"({policy.category_title(cat)}), yet its category table marks {cat} not "
                                    "collected"),
                        "quotes": [item["quote"], table_quote],
                        "clauses": ["ccpa:1798.130(a)(5)(B)"],
                    })
        unaddressed: dict[str, list[str]] = {}
        for lst in policy.field_lists():
            for item in lst["fields"]:
                cats = item.get("categories") or field_categories(item.get("subject_field", ""))
                for cat in cats:
                    state = policy.collected(cat)
                    if state is False:
                        findings.append({
                            "id": f"listed-field-in-category-marked-no-{cat.lower()}",
                            "message": (f"the field list {lst['id']} names {item['quote']!r} (category {cat}), "
                                        f"yet the category table marks {cat} not collected"),
                            "quotes": [lst["quote"], item["quote"], table_quote],
                            "clauses": ["ccpa:1798.130(a)(5)(B)"],
                        })
                    elif state is None:
                        unaddressed.setdefault(cat, []).append(item["quote"])
        for cat, items in sorted(unaddressed.items()):
            findings.append({
                "id": f"category-not-addressed-{cat.lower()}",
                "message": (f"the policy collects {', '.join(sorted(set(items)))}, which is category {cat} "
                            f"({CATEGORY_TITLES.get(cat, cat)}, Cal. Civ. Code §1798.140(v)(1)), but its "
                            f"category table does not address {cat} at all"),
                "quotes": [table_quote, *sorted(set(items))],
                "clauses": ["ccpa:1798.130(a)(5)(B)"],
            })
    return findings


# -- verdicts for the compliance report -------------------------------------------------------

def _results_by_check(results: Mapping | Iterable) -> dict[str, list[dict]]:
    if isinstance(results, Mapping) and "checks" in results:
        rows = results["checks"]
    elif isinstance(results, Mapping):
        rows = [{"check_id": k, **(v if isinstance(v, Mapping) else {"outcome": v})} for k, v in results.items()]
    else:
        rows = list(results)
    out: dict[str, list[dict]] = {}
    for row in rows:
        row = row if isinstance(row, Mapping) else row.__dict__
        out.setdefault(row["check_id"], []).append(dict(row))
    return out


def promise_verdicts(policy: Policy, results: Mapping | Iterable) -> list[dict]:
    """Every promise of the policy with its verdict after a run.

    `results`: the run's privacy-results.json as a dict (``{"checks": [...]}``), a mapping of
    check id -> result (or outcome), or an iterable of check results. Verdicts:
    ``verified`` (every check that verifies it ran and passed), ``broken`` (one of them failed,
    waived or not), ``manual`` (no automated check can), ``not checked`` (a check did not run,
    could not be made, or was not applicable) -- never shown as verified.
    """
    by_check = _results_by_check(results)
    out = []
    for promise in policy.promises:
        entry = {"id": promise["id"], "section": promise.get("section", ""), "quote": promise["quote"],
                 "clauses": list(promise.get("clauses") or []), "checks": []}
        if promise.get("manual"):
            entry.update(verdict=MANUAL, reason=promise["manual"])
            out.append(entry)
            continue
        broken, unchecked = [], []
        for check_id in promise["checks"]:
            rows = by_check.get(check_id, [])
            outcomes = sorted({r.get("outcome", "") for r in rows})
            entry["checks"].append({"check_id": check_id, "outcome": ", ".join(outcomes) or "not run",
                                    "message": next((r.get("message", "") for r in rows
                                                     if r.get("outcome") != "passed"), "")})
            if any(o in ("failed", "waived") for o in outcomes):
                broken.append(f"{check_id}: {', '.join(o for o in outcomes if o != 'passed')}")
            elif not rows or outcomes != ["passed"]:
                unchecked.append(f"{check_id}: {', '.join(outcomes) or 'not run'}")
        if broken:
            entry.update(verdict=BROKEN, reason="; ".join(broken))
        elif unchecked:
            entry.update(verdict=NOT_CHECKED, reason="; ".join(unchecked))
        else:
            entry.update(verdict=VERIFIED, reason=f"{len(promise['checks'])} check(s) passed")
        out.append(entry)
    return out
