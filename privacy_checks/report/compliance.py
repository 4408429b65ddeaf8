"""The compliance report: what was checked, what held, what broke and where, clause by clause.

Built from `privacy-results.json` (the per-check results), the clause registry and the
evidence files, as `compliance-report.json` and a self-contained `compliance-report.html`
(inline CSS, no scripts, no fetched resources: it opens from file:// on an air-gapped
laptop). Written for a non-engineer: a plain-language summary first, no stack traces.
The same results also go out as an OSCAL Assessment Results document,
`oscal-assessment-results.json` (see oscal.py), for GRC tools.

`manifest.json` lists the SHA-256 of every file the run produced (evidence, results, the
report, Allure results). A digest stored beside the files proves nothing by itself, so the
manifest's own digest is printed in the terminal (the CI log keeps it) and, given an Ed25519
key in PRIVACY_CHECKS_SIGNING_KEY, the manifest is signed (`manifest.sig`, base64).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from .. import __version__
from .. import clauses as registry
from ..evidence import redact_text
from ..outcomes import describe_examined

SIGNING_KEY_ENV = "PRIVACY_CHECKS_SIGNING_KEY"
REPORT_JSON = "compliance-report.json"
REPORT_HTML = "compliance-report.html"
OSCAL_JSON = "oscal-assessment-results.json"
OSCAL_CATALOG = "oscal-catalog.json"  # the suites' checks as controls (oscal.py)
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
COVER_MANIFEST = "cover-manifest.json"  # what the PDF's cover names (pdf.py)
SCHEMA = "privacy-checks/compliance-report/1"

# Worst first: a clause is as bad as the worst check behind it.
PRECEDENCE = ("failed", "error", "not verified", "waived", "partly tested", "passed", "not run", "skipped",
              "not applicable")
# A clause whose checks that ran all held, but some of whose checks did not run (deselected,
# not collected, skipped, cut off by an interrupt), is "partly tested", never "held".
UNTESTED = ("not run", "skipped")
PLAIN = {
    "partly tested": "partly tested",
    "not run": "not run",
    "passed": "held",
    "failed": "broken",
    "error": "could not be checked",
    "waived": "waived",
    "not applicable": "not applicable",
    "not verified": "not verified",
    "skipped": "skipped",
}
EXPLAIN = {
    "passed": "the promise held; the check says what it examined (a pass with nothing examined is "
              "never counted as held), and its evidence file, where one was recorded, shows how it was checked",
    "failed": "the promise is broken: the evidence says where",
    "error": "the check could not be made (for example the target was unreachable or a positive "
             "control failed), so nothing is claimed either way",
    "waived": "a known gap, accepted in writing by the approver named, until the date given",
    "not applicable": "the check does not apply to this target in this run, for the reason given (for "
                      "example the profile says the target lawfully lacks the right, or nothing had yet "
                      "reached the end of its retention period): nothing is claimed either way",
    "not verified": "a right every business must honour, which this target's profile says cannot be "
                    "driven automatically: never counted as held",
    "skipped": "the check did not run",
    "not run": "the check was not part of this run, or the run ended before it (the reason is given): "
               "nothing is claimed",
    "partly tested": "every check of this clause that ran held, but some of its checks did not run: "
                     "the clause is not shown to hold",
}
# A pass without an evidence file must not point the reader at evidence that does not exist.
PASSED_NO_EVIDENCE = ("the promise held; the check says what it examined (a pass with nothing examined is "
                      "never counted as held); no evidence file was recorded for this check")
NOT_APPLICABLE_HERE = "this check does not apply to this target in this run, for the reason given: nothing is " \
    "claimed either way"
LEGEND = (
    ("Values", "every personal value this report shows belongs to a synthetic subject this run created "
               "(its canary token, or a value derived from it); no real person's value is shown"),
    ("«…»", "marks the value a check matched, in the form it was found (exact, casefold, urlencoded, "
            "base64, a hash …), or text a message quotes from the target (a policy page's date)"),
    ("•", "replaces each letter and digit of the context around a match, which may be a real person's "
          "data; the run's own canaries and the names of JSON keys (the target's field names, not "
          "personal data) stay readable"),
)
_PREFIX = re.compile(r"^(FAILED|ERROR|NOT APPLICABLE|NOT VERIFIED|Skipped):\s*", re.IGNORECASE)
_TRACE_LINE = re.compile(r"^(\s*File \"|.*\.py:\d+:|Traceback \(most recent call last\)|\s{4}\S|[>_]{1,}\s|_{5,})")


def plain_message(message: str) -> str:
    """The message a person can read: no traceback, no secret."""
    text = (message or "").strip()
    if "Traceback (most recent call last)" in text or re.search(r"^E\s{2,}", text, re.MULTILINE):
        # pytest's long form: keep only the exception lines ("E   ...") it quotes.
        quoted = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
        text = "\n".join(quoted) if quoted else next(
            (line for line in reversed(text.splitlines()) if line.strip() and not _TRACE_LINE.match(line)), "")
    text = _PREFIX.sub("", text)
    return redact_text(text)[:6000]


def where_lines(message: str) -> list[str]:
    """The places a message names: the indented lines under its first line."""
    return [line.strip() for line in message.splitlines()[1:] if line.startswith("  ") and line.strip()]


def _iso(value) -> str:
    if value in (None, ""):
        return ""
    try:
        return datetime.fromtimestamp(float(value), UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return str(value)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _clause_of(citation: str):
    family, _, ref = citation.partition(":")
    try:
        return registry.resolve(family, ref)
    except (registry.ClauseError, KeyError, ValueError):
        return None


def clause_id(citation: str) -> str:
    """A citation's stable id, as the clause registry spells it (ClauseRef.id); an unknown one
    is kept as cited."""
    ref = _clause_of(citation)
    return citation if ref is None else ref.id


@functools.cache
def _aspects() -> dict:
    import yaml

    text = resources.files("privacy_checks.data").joinpath("clause_aspects.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def clause_aspects(ref) -> dict:
    """{"tested": [...], "not_tested": [...], "checked_against": "..."} for a cited clause: what
    the suites test of it, and which text of the law its citations were checked against. A clause
    missing from the list is said to be unreviewed rather than shown as fully tested."""
    key = ref.id.split("(", 1)[0]
    entry = _aspects().get(key)
    if entry is None:
        return {"tested": [], "not_tested": ["not reviewed: which aspects of this clause the suites test is not recorded"],
                "checked_against": "not recorded"}
    return {"tested": list(entry.get("tested") or []), "not_tested": list(entry.get("not_tested") or []),
            "checked_against": str(entry.get("checked_against") or "not recorded")}


def severity_of(check_id: str, citations: list[str], overrides: dict[str, str]) -> tuple[str, str]:
    """(severity, where it came from): the profile's `severity` (first fnmatch pattern that
    matches the check id), else the heaviest weight of the clauses the check cites."""
    import fnmatch

    for pattern, level in overrides.items():
        if fnmatch.fnmatchcase(check_id or "", pattern):
            return str(level), f"profile severity {pattern!r}"
    weights = [ref.clause.weight for ref in map(_clause_of, citations) if ref is not None]
    if not weights:
        return "normal", "default"
    return min(weights, key=registry.WEIGHTS.index), "the clauses it cites"


def _worst(outcomes) -> str:
    found = [o for o in outcomes if o in PRECEDENCE]
    worst = min(found, key=PRECEDENCE.index) if found else "skipped"
    if worst == "passed" and any(o in UNTESTED or o == "partly tested" for o in found):
        return "partly tested"
    return worst


def _not_run_entries(scope: dict) -> tuple[list[dict], list[list[str]]]:
    """The checks of the run's suites that did not run (scope.py), as report entries."""
    entries, cited = [], []
    for item in scope.get("not_run") or []:
        clauses = list(item.get("clauses") or [])
        entries.append({
            "check_id": item.get("check_id"), "outcome": "not run", "outcome_in_words": PLAIN["not run"],
            "message": item.get("reason") or "", "where": [],
            "clauses": [(_clause_of(c).display if _clause_of(c) else c) for c in clauses],
            "clause_ids": [clause_id(c) for c in clauses], "test": item.get("test"),
            "finished_at": "", "duration_s": None, "examined": {}, "places": [], "evidence": None})
        cited.append(clauses)
    return entries, cited


def _findings_summary(evidence: dict, limit: int = 20) -> list[str]:
    """The evidence's findings grouped by place (findings.py): fields, forms, first rows, count."""
    from ..findings import from_findings

    places = from_findings(evidence.get("findings", []))
    out = [redact_text(p.line()) for p in places[:limit]]
    if len(places) > limit:
        out.append(f"… and {len(places) - limit} more place(s) (see the evidence file)")
    return out


def _attachments(evidence: dict, evidence_dir: Path, out_dir: Path) -> list[dict]:
    """Files kept with a check's evidence (screenshots, request timelines), as links from the report."""
    out = []
    for a in evidence.get("attachments", []):
        path = evidence_dir / str(a.get("file", ""))
        if a.get("file") and path.is_file():
            out.append({"name": str(a.get("name", a["file"])), "file": _rel(path, out_dir),
                        "media_type": str(a.get("media_type", "")), "sha256": sha256_file(path)})
    return out


def build_report(results: dict, *, out_dir: Path, results_path: Path | None = None,
                 evidence_dir: Path | None = None, waivers_ignored: list[str] | None = None,
                 changes: dict | None = None, waivers_unused: list[str] | None = None) -> dict:
    evidence_dir = evidence_dir or out_dir / "evidence"
    target = results.get("target") or {}
    checks = []
    for raw in results.get("checks", []):
        outcome = raw.get("outcome") or "skipped"
        message = plain_message(raw.get("message", ""))
        entry = {
            "check_id": raw.get("check_id"),
            "outcome": outcome,
            "outcome_in_words": PLAIN.get(outcome, outcome),
            "message": message,
            # every place the check named (the message shows the first few), else its own lines;
            # the places still broken first, then the waived ones, marked
            "where": (_where(raw.get("places") or []) or where_lines(message))
            if outcome in ("failed", "error", "waived") else [],
            "clauses": [],
            "clause_ids": [clause_id(c) for c in raw.get("clauses", [])],
            "test": raw.get("nodeid"),
            "finished_at": _iso(raw.get("finished_at")),
            "duration_s": raw.get("duration_s"),
            # what the check looked at: a pass always carries a positive count
            "examined": dict(raw.get("examined") or {}),
            # what the check noticed without judging it (storage residue reported for information)
            "remarks": [redact_text(str(r)) for r in raw.get("remarks") or []],
            # Where it broke, grouped by place (findings.py), as the check reported it.
            "places": [{k: p.get(k) for k in ("id", "words", "count", "fields", "rows", "line", "waived") if k in p}
                       for p in raw.get("places") or []],
            # what waivers covered of a broken check: per clause, the places waived and still broken
            "waived": raw.get("waived"),
            # the check's outcome for each clause it cites (a clause waiver covers that clause only)
            "clause_outcomes": _clause_outcomes(raw, outcome),
            "evidence": None,
        }
        entry["severity"], entry["severity_from"] = severity_of(
            entry["check_id"], raw.get("clauses", []), (target.get("profile") or {}).get("severity") or {})
        for citation in raw.get("clauses", []):
            ref = _clause_of(citation)
            entry["clauses"].append(ref.display if ref else citation)
        path = evidence_dir / f"{entry['check_id']}.json"
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                data = {}
            entry["evidence"] = {"file": _rel(path, out_dir), "sha256": sha256_file(path),
                                 "stages": [s.get("stage") for s in data.get("evidence", {}).get("stages", [])],
                                 "findings": _findings_summary(data.get("evidence", {})),
                                 "attachments": _attachments(data.get("evidence", {}), evidence_dir, out_dir)}
        checks.append(entry)

    scope = results.get("scope") or {}
    not_run, not_run_cited = _not_run_entries(scope)
    # a check of a suite this run did not touch stands only behind the clauses this run's checks
    # cite (it makes them partly tested); its other clauses are not this run's business
    from .scope import section_of

    ran_sections = {section_of(c) for raw in results.get("checks", [])
                    for c in raw.get("clauses", [])}
    not_run_cited = [[c for c in cited if section_of(c) in ran_sections]
                     if entry["message"].startswith("not in this run") else cited
                     for entry, cited in zip(not_run, not_run_cited, strict=True)]
    ran_count = len(checks)
    cited_by = [raw.get("clauses", []) for raw in results.get("checks", [])] + not_run_cited
    for entry, cited in zip(not_run, not_run_cited, strict=True):
        entry["severity"], entry["severity_from"] = severity_of(
            entry["check_id"], cited, (target.get("profile") or {}).get("severity") or {})
    checks += not_run

    # One clause section per cited section, in the registry's order; a check citing several
    # clauses stands behind each of them.
    by_clause: dict[tuple[str, str], dict] = {}
    for cited, entry in zip(cited_by, checks, strict=True):
        for citation in cited:
            ref = _clause_of(citation)
            if ref is None:
                continue
            key = (ref.family, ref.clause.id)
            section = by_clause.setdefault(key, {
                "family": ref.family, "regulation": registry.EPICS[ref.family], "clause": ref.clause.id,
                "display": ref.clause.display, "title": ref.clause.title, "right": ref.clause.right,
                "url": ref.clause.url, "policy_text": ref.clause.summary, "citations": [], "checks": [],
                # what the suites test of this clause, and what they do not (data/clause_aspects.yaml)
                **clause_aspects(ref)})
            if ref.display not in section["citations"]:
                section["citations"].append(ref.display)
            if entry["check_id"] not in section["checks"]:
                section["checks"].append(entry["check_id"])
            # the check's outcome for this clause: the worst over its citations of it
            mine = entry.get("clause_outcomes", {}).get(clause_id(citation), entry["outcome"])
            had = section.setdefault("check_outcomes", {}).get(entry["check_id"])
            section["check_outcomes"][entry["check_id"]] = mine if had is None else _worst([had, mine])
    regulations = []
    for family in registry.MARKER_FAMILIES:
        order = [c.id for c in registry.clauses(family)]
        sections = sorted((s for (f, _), s in by_clause.items() if f == family), key=lambda s: order.index(s["clause"]))
        for s in sections:
            s["outcome"] = _worst(s["check_outcomes"].get(c) for c in s["checks"])
            s["outcome_in_words"] = PLAIN.get(s["outcome"], s["outcome"])
            if s["outcome"] == "passed" and s["not_tested"]:
                # held only for what the checks examine; the rest is listed beside it
                s["outcome_in_words"] = "held for the aspects tested"
        if sections:
            regulations.append({"family": family, "name": registry.EPICS[family],
                                "outcome": _worst(s["outcome"] for s in sections), "clauses": sections})

    counts = {k: sum(1 for c in checks if c["outcome"] == k) for k in PRECEDENCE}
    summary = {
        "promises_checked": ran_count, "not_run": counts["not run"],
        "held": counts["passed"], "broken": counts["failed"], "could_not_be_checked": counts["error"],
        "waived": counts["waived"], "not_applicable": counts["not applicable"],
        "not_verified": counts["not verified"], "skipped": counts["skipped"],
        "clauses": len(by_clause),
        "clauses_broken": sum(1 for s in by_clause.values() if s["outcome"] == "failed"),
        "clauses_partly_tested": sum(1 for s in by_clause.values() if s["outcome"] == "partly tested"),
    }
    summary["verdict"] = _verdict(counts, ran_count, scope)
    summary["in_words"] = _summary_sentence(summary, target, results.get("started_at", ""), scope.get("clock"))
    return {
        "schema": SCHEMA,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "framework": f"privacy-checks {__version__}",
        "run": {"started_at": results.get("started_at", ""), "finished_at": results.get("finished_at", ""),
                "target": {k: target.get(k) for k in ("name", "base_url", "flaws", "seed", "nonce") if k in target},
                "command": scope.get("command") or None, "selection": list(scope.get("selection") or []),
                "interrupted": scope.get("interrupted") or None,
                # conditions.py: under what conditions the run judged
                "run_ids": list(scope.get("ledger_runs") or []), "profile": scope.get("profile"),
                "examined": scope.get("examined"), "exclusions": scope.get("exclusions"),
                "framework": scope.get("framework"), "host": scope.get("host"),
                "operator": scope.get("operator"), "assessor": scope.get("assessor"), "clock": scope.get("clock"),
                "results_file": _rel(results_path, out_dir) if results_path else None,
                "results_sha256": sha256_file(results_path) if results_path and results_path.is_file() else None},
        "summary": summary,
        "outcomes_explained": EXPLAIN,
        "legend": dict(LEGEND),
        # The waiver file in force (path, SHA-256) and each waiver with what it covered
        # (report/pytest_hooks.py _waiver_record); None: the run had no --privacy-waivers.
        "waivers": _waivers_in_force(results.get("waivers")),
        "waivers_ignored": list(waivers_ignored if waivers_ignored is not None
                                else (results.get("waivers") or {}).get("ignored") or []),
        "waivers_unused": list(waivers_unused if waivers_unused is not None
                               else (results.get("waivers") or {}).get("unused") or []),
        # What changed since the baseline (report/changes.py), shown first; None: not compared.
        "changes": changes,
        "regulations": regulations,
        "checks": checks,
        "evidence_files": {c["evidence"]["file"]: c["evidence"]["sha256"] for c in checks if c["evidence"]},
    }


def _where(places: list[dict]) -> list[str]:
    """Place lines, those still broken first, then the waived ones marked "[waived]"; a place
    waived for some of the check's clauses only says which."""
    broken, waived = [], []
    for p in places:
        if not p.get("line"):
            continue
        w = p.get("waived") or {}
        if w.get("whole"):
            waived.append(f"[waived] {p['line']}")
        elif w.get("clauses"):
            broken.append(f"{p['line']} [waived for {', '.join(map(_display_of, w['clauses']))} only]")
        else:
            broken.append(p["line"])
    return broken + waived


def _display_of(citation: str) -> str:
    ref = _clause_of(citation)
    return ref.display if ref else citation


def _clause_outcomes(raw: dict, outcome: str) -> dict[str, str]:
    """clause id -> the check's outcome for that clause: what the waivers made of each citation
    when some were waived, else the check's outcome for all."""
    per = (raw.get("waived") or {}).get("clauses") or {}
    return {clause_id(c): (per.get(c) or {}).get("outcome") or outcome for c in raw.get("clauses", [])}


def _waivers_in_force(record: dict | None) -> dict | None:
    if not record:
        return None
    return {"file": record.get("file"), "sha256": record.get("sha256"),
            "in_force": [{k: w.get(k) for k in ("source", "check", "clause", "places", "justification", "approver",
                                                 "approved", "expires", "used_by", "unused")}
                         for w in record.get("in_force") or []],
            "expired": [{k: w.get(k) for k in ("source", "check", "clause", "places", "approver", "approved",
                                                "expires")} for w in record.get("expired") or []]}


def _verdict(counts: dict, ran: int, scope: dict) -> str:
    """Worst first. A run that left checks of its suites out never reads "all … held"."""
    untested = counts["not run"] + counts["skipped"]
    if counts["failed"]:
        verdict = "promises broken"
    elif counts["error"]:
        verdict = "incomplete: some checks could not be made"
    elif scope.get("interrupted"):
        verdict = f"incomplete: {ran} of {ran + counts['not run']} checks ran"
    elif untested:
        verdict = (f"partly tested: every check that ran held, but {_n(untested, 'check')} of the run's "
                   "suites, or citing the same clauses, did not run")
    else:
        verdict = "all checked promises held"
    if scope.get("interrupted"):
        verdict = f"interrupted — {verdict}"
    return verdict


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary_sentence(s: dict, target: dict, started_at: str, clock: dict | None = None) -> str:
    where = target.get("name") or "the target"
    if target.get("base_url"):
        where += f" ({target['base_url']})"
    parts = [f"{s['held']} held", f"{s['broken']} broken", f"{s['could_not_be_checked']} could not be checked"]
    for key, label in (("waived", "waived"), ("not_applicable", "not applicable"),
                       ("not_verified", "not verified"), ("skipped", "skipped"), ("not_run", "not run")):
        if s[key]:
            parts.append(f"{s[key]} {label}")
    if clock and clock.get("as_of"):
        # deadlines were judged by the overridden clock: the day the run took place is not the
        # day its judgements are for
        when = f" as of {clock['as_of']} (clock set by {clock.get('env')})"
    else:
        when = f" on {started_at[:10]}" if started_at else ""
    return (f"This run checked {_n(s['promises_checked'], 'promise')} against {where}{when}: "
            + ", ".join(parts) + f". Verdict: {s['verdict']}.")


_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px} h2{margin-top:32px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{margin:0;font-size:17px}
.box{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px;margin:12px 0}
.summary{font-size:17px} .verdict{font-size:20px;font-weight:600}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin-top:8px}
.count{border-radius:6px;padding:6px 10px;border:1px solid #d0d7de;background:#fff}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;font-size:13px;font-weight:600;color:#fff;white-space:nowrap}
.o-passed{background:#1a7f37} .o-failed{background:#cf222e} .o-error{background:#9a6700}
.o-waived{background:#8250df} .o-not-applicable{background:#57606a} .o-not-verified{background:#bc4c00}
.o-skipped{background:#57606a} .o-not-run{background:#57606a} .o-partly-tested{background:#bc4c00}
.check{border-top:1px solid #eaeef2;padding-top:8px;margin-top:8px}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;border-radius:6px;padding:8px;font-size:13px}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #eaeef2;text-align:left;padding:4px 6px;vertical-align:top}
.muted{color:#57606a;font-size:13px} code{font-size:13px;word-break:break-all}
.cover{display:none}
@page{size:A4;margin:14mm}
@media print{
body{background:#fff;font-size:12px} main{max-width:none;padding:0}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.cover{display:block;break-after:page} .cover h1{font-size:30px;margin-top:40px} .cover th{white-space:nowrap}
h2.regulation{break-before:page} .check{break-inside:avoid} a{color:inherit}
}
"""


def _badge(outcome: str) -> str:
    return f'<span class="badge o-{outcome.replace(" ", "-")}">{html.escape(PLAIN.get(outcome, outcome))}</span>'


def _render_cover(report: dict, cover_manifest_sha256: str | None) -> list[str]:
    """The printed report's first page (shown in print only): verdict, target, scope, the
    instant it judged as of, and the manifest digest that ties the printout to the files."""
    e = html.escape
    s, run = report["summary"], report["run"]
    target, clock = run.get("target") or {}, run.get("clock") or {}
    scope = [s["in_words"]]
    if run.get("examined") is not None:
        scope.append(f"Examined: {_examined_counts(run['examined'])}.")
    if run.get("selection"):
        scope.append(f"Selection: {'; '.join(run['selection'])}.")
    if run.get("interrupted"):
        scope.append("The run was interrupted.")
    as_of = (f"{clock['as_of']} (clock set by {clock.get('env')}; deadlines were judged as of this instant)"
             if clock.get("as_of") else f"{run.get('finished_at') or run.get('started_at') or 'unknown'} "
             "(the run's end, by the wall clock)")
    manifest = (f"{COVER_MANIFEST} sha256 {cover_manifest_sha256} (every file of the run and its reports but "
                f"this PDF; {MANIFEST}, which lists it and this PDF, is the one signed)" if cover_manifest_sha256
                else f"the SHA-256 of {MANIFEST} is printed in the run's log")
    rows = [("Target", " ".join(x for x in (target.get("name"), target.get("base_url") and f"({target['base_url']})")
                                if x) or "unknown"),
            ("Scope", " ".join(scope)), ("Judged as of", as_of), ("Run", ", ".join(run.get("run_ids") or []) or None),
            ("Operator", (run.get("operator") or {}).get("name")), ("Host", run.get("host")),
            ("Manifest", manifest)]
    return ['<section class="cover" id="cover"><h1>Privacy compliance report</h1>',
            f'<p class="verdict">Verdict: {e(s["verdict"])}</p><table>',
            *[f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in rows if v],
            f'</table><p class="muted">{e(report["framework"])} · generated {e(report["generated_at"])}</p></section>']



def render_html(report: dict, *, cover_manifest_sha256: str | None = None) -> str:
    """The report as one self-contained page; printed (pdf.py), its cover names
    `cover_manifest_sha256`."""
    e = html.escape
    s = report["summary"]
    run = report["run"]
    target = run.get("target", {})
    checks = {c["check_id"]: c for c in report["checks"]}
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           # No scripts and nothing fetched: the report must open from file:// offline.
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
           '<meta name="viewport" content="width=device-width,initial-scale=1">',
           f"<title>Privacy compliance report: {e(str(target.get('name') or 'target'))}</title>",
           f"<style>{_CSS}</style></head><body><main>",
           *_render_cover(report, cover_manifest_sha256),
           "<h1>Privacy compliance report</h1>",
           f'<p class="muted">{e(report["framework"])} · generated {e(report["generated_at"])}</p>',
           *_render_changes(report.get("changes")),
           '<section class="box summary" id="summary">',
           f'<p class="verdict">Verdict: {e(s["verdict"])}</p>', f"<p>{e(s['in_words'])}</p>",
           '<div class="counts">']
    for label, key in (("held", "held"), ("broken", "broken"), ("could not be checked", "could_not_be_checked"),
                       ("waived", "waived"), ("not applicable", "not_applicable"), ("not verified", "not_verified"),
                       ("not run", "not_run")):
        out.append(f'<span class="count"><strong>{s.get(key, 0)}</strong> {e(label)}</span>')
    out.append("</div>")
    if run.get("interrupted"):
        out.append(f'<p class="verdict">The run did not finish: '
                   f'{e(run["interrupted"].replace(" before this check ran", ""))}. The checks it planned but '
                   "did not run are listed below as <em>not run</em>.</p>")
    # heaviest first: a reader triages the critical findings before the minor ones
    broken = sorted((c for c in report["checks"] if c["outcome"] in ("failed", "error")),
                    key=lambda c: registry.WEIGHTS.index(c["severity"]) if c.get("severity") in registry.WEIGHTS else 1)
    if broken:
        out.append("<p><strong>Where promises broke or could not be checked:</strong></p><ul>")
        for c in broken:
            first = c["message"].splitlines()[0] if c["message"] else ""
            partly = (" <span class=\"badge o-waived\">partly waived</span>"
                      if c["outcome"] == "failed" and (c.get("waived") or {}).get("waivers") else "")
            out.append(f"<li>{_badge(c['outcome'])}{partly} [{e(c.get('severity') or '')}] "
                       f"{e(', '.join(c['clauses']))}: {e(first)}"
                       + (f"<br><span class=\"muted\">{e('; '.join(c['where'][:3]))}"
                          f"{' …' if len(c['where']) > 3 else ''}</span>" if c["where"] else "") + "</li>")
        out.append("</ul>")
    out.append("</section>")

    out += _render_run_box(run)
    not_run = [c for c in report["checks"] if c["outcome"] == "not run"]
    if not_run:
        out.append(f'<section class="box" id="not-run"><h3>Not run ({len(not_run)})</h3>'
                   "<p>Checks of this run's suites that have no result. A clause any of them cites is at "
                   "most <em>partly tested</em>.</p><table><tr><th>check</th><th>why</th><th>clauses</th></tr>")
        out += [f'<tr><td><code>{e(c["check_id"])}</code></td><td>{e(c["message"])}</td>'
                f'<td>{e(", ".join(c["clauses"]))}</td></tr>' for c in not_run]
        out.append("</table></section>")
    out += _render_waivers(report)

    rendered: dict[str, str] = {}  # check id -> the clause it is shown in full under
    for reg in report["regulations"]:
        out.append(f'<h2 class="regulation" id="{e(reg["family"])}">{e(reg["name"])} {_badge(reg["outcome"])}</h2>')
        for cl in reg["clauses"]:
            out.append(f'<section class="box clause" id="{e(reg["family"])}-{e(cl["clause"])}">')
            out.append(f'<h3>{_badge(cl["outcome"])} {e(cl["display"])}: {e(cl["title"])}</h3>')
            out.append(f'<p>{e(cl["policy_text"])} <a href="{e(cl["url"])}">Read the clause text</a></p>')
            if cl.get("tested") or cl.get("not_tested"):
                if cl["outcome"] == "passed" and cl.get("not_tested"):
                    out.append('<p><strong>Held for the aspects tested only</strong>; the aspects not tested '
                               "are listed below and nothing is claimed about them.</p>")
                out.append('<div class="aspects"><p>What these suites test of it:</p><ul>'
                           + "".join(f"<li>{e(a)}</li>" for a in cl.get("tested") or []) + "</ul>")
                if cl.get("not_tested"):
                    out.append("<p>What they do not test:</p><ul>"
                               + "".join(f"<li>{e(a)}</li>" for a in cl["not_tested"]) + "</ul>")
                out.append("</div>")
            if cl["citations"] != [cl["display"]]:
                out.append(f'<p class="muted">Cited as: {e(", ".join(cl["citations"]))}</p>')
            if cl.get("checked_against"):
                out.append(f'<p class="muted">Citations checked against: {e(cl["checked_against"])}</p>')
            for check_id in cl["checks"]:
                c = checks[check_id]
                for_clause = (cl.get("check_outcomes") or {}).get(check_id)
                if check_id in rendered:
                    # one anchor per check: under its other clauses, a link to where it is shown
                    out.append(f'<div class="check"><p>{_badge(c["outcome"])} <a href="#check-{e(check_id)}">'
                               f'<strong>{e(check_id)}</strong></a> <span class="muted">— shown in full under '
                               f'{e(rendered[check_id])}</span></p>{_for_clause(c, for_clause)}</div>')
                    continue
                rendered[check_id] = cl["display"]
                out.append(_render_check(c, for_clause))
            out.append("</section>")

    out.append('<h2 id="legend">How values are shown</h2><section class="box legend"><table>')
    out += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in (report.get("legend") or {}).items()]
    out.append("</table></section>")
    out.append('<h2 id="outcomes">What the outcomes mean</h2><section class="box"><table>')
    out += [f"<tr><th>{_badge(k)}</th><td>{e(v)}</td></tr>" for k, v in report["outcomes_explained"].items()]
    out.append("</table></section>")
    out.append('<h2 id="evidence">Evidence files</h2><section class="box">'
               f'<p>SHA-256 of each evidence file. The digest of <code>{MANIFEST}</code>, which lists every '
               "file of this run, is printed in the run's log (and signed when a signing key was given).</p><table>")
    out += [f"<tr><td><code>{e(p)}</code></td><td><code>{e(d)}</code></td></tr>"
            for p, d in report["evidence_files"].items()]
    out.append("</table></section></main></body></html>")
    return "\n".join(out)


def _examined_counts(examined: dict) -> str:
    """`3 stores (sql 2, redis 1): 41 tables, files, keys' databases or objects read; 4 recipients
    watched (12 deliveries read)`."""
    stores, recipients = examined.get("stores") or [], examined.get("recipients") or []
    kinds: dict[str, int] = {}
    for st in stores:
        kinds[st.get("kind") or "?"] = kinds.get(st.get("kind") or "?", 0) + 1
    places = sum(len(st.get("locations") or []) for st in stores)
    declared = [r for r in recipients if r.get("name") != "UNDECLARED"]
    undeclared = sum(r.get("deliveries_read") or 0 for r in recipients if r.get("name") == "UNDECLARED")
    browser = examined.get("browser_parties") or []
    seen_by_browser = ""
    if browser:
        watched = len([b for b in browser if b.get("role") not in ("first_party", "undeclared")])
        strangers = [b for b in browser if b.get("role") == "undeclared"]
        requests = sum(b.get("requests") or 0 for b in browser if b.get("role") != "first_party")
        seen_by_browser = (f"; in the browser, {watched} declared {'party' if watched == 1 else 'parties'} watched "
                           f"and {requests} requests to other parties than the first read"
                           + (f", {_n(len(strangers), 'undeclared domain')} among them" if strangers else ""))
    return (f"{_n(len(stores), 'store')} swept"
            + (f" ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})" if kinds else "")
            + f"; {places} tables, files, databases or objects read in them; "
            + f"{_n(len(declared), 'declared recipient')} watched "
            + f"({sum(r.get('deliveries_read') or 0 for r in declared)} deliveries read"
            + (f"; {undeclared} more to no declared recipient" if undeclared else "") + ")" + seen_by_browser)


def _render_run_box(run: dict) -> list[str]:
    """The run's scope and conditions: what, against which profile, by whom, where, as of when."""
    e = html.escape
    target = run.get("target", {})
    profile = run.get("profile") or {}
    framework = run.get("framework") or {}
    operator = run.get("operator") or {}
    clock = run.get("clock") or {}
    build = None
    if framework.get("version"):
        build = f"privacy-checks {framework['version']}" + (
            f", commit {framework['commit']}" + (" (with uncommitted changes)" if framework.get("modified") else "")
            if framework.get("commit") else ", not from a git checkout")
    as_of = None
    if clock.get("as_of"):
        as_of = (f"{clock['as_of']} ({clock.get('env')}={clock.get('value')}: deadlines were judged as of "
                 "this instant, not the wall clock)")
    elif clock.get("problem"):
        as_of = f"{clock.get('env')}={clock.get('value')} could not be used: {clock['problem']}"
    rows = [("Target", target.get("name")), ("Base URL", target.get("base_url")),
            ("Demo flaws switched on", ", ".join(target.get("flaws") or []) or None),
            ("Run id", ", ".join(run.get("run_ids") or []) or None),
            ("Judged as of", as_of),
            ("Assessor", (run.get("assessor") or {}).get("name")),
            ("Operator", f"{operator['name']} ({operator.get('source')})" if operator.get("name") else None),
            ("Host", run.get("host")), ("Framework", build),
            ("Profile", profile.get("path")), ("Profile SHA-256", profile.get("sha256")),
            ("Seed", target.get("seed")), ("Canary nonce", target.get("nonce")),
            ("Command", run.get("command")), ("Selection", "; ".join(run.get("selection") or []) or None),
            ("Started", run.get("started_at")), ("Finished", run.get("finished_at")),
            ("Results file", run.get("results_file")), ("Results SHA-256", run.get("results_sha256"))]
    out = ['<section class="box" id="run"><h3>Run</h3><table>']
    out += [f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in rows if v]
    out.append("</table>")
    examined = run.get("examined")
    if examined is not None:
        out.append(f'<p id="run-examined"><strong>Examined:</strong> {e(_examined_counts(examined))}. '
                   "The full list is in the JSON report (<code>run.examined</code>).</p>")
        stores = examined.get("stores") or []
        if stores:
            out.append("<table><tr><th>store</th><th>kind</th><th>read</th><th>not swept</th></tr>")
            out += [f"<tr><td><code>{e(st['name'])}</code></td><td>{e(str(st.get('kind')))}</td>"
                    f"<td>{e(describe_examined(st.get('units') or {}))}</td>"
                    f"<td>{len(st.get('unswept') or [])}</td></tr>" for st in stores]
            out.append("</table>")
        declared = (profile.get("declared") or {})
        swept = {st["name"] for st in stores}
        watched = {r["name"] for r in examined.get("recipients") or []}  # UNDECLARED is never declared
        missed = [f"store {n}" for n in declared.get("stores") or [] if n not in swept] + [
            f"recipient {n}" for n in declared.get("recipients") or [] if n not in watched]
        if missed:
            out.append(f"<p>Declared in the profile but not examined by this run's checks: {e(', '.join(missed))}</p>")
    exclusions = run.get("exclusions") or {}
    lines = [f"store {x['store']}: " + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in x.items() if k != "store")
             for x in exclusions.get("stores") or []]
    lines += [f"right not offered: {right} ({why})" for right, why in (exclusions.get("not_offered") or {}).items()]
    lines += [f"the target lacks {what} ({why})" for what, why in (exclusions.get("lacks") or {}).items()]
    if lines or exclusions.get("never_examined"):
        out.append('<div id="run-exclusions"><p><strong>Excluded by the profile:</strong></p><ul>')
        out += [f"<li>{e(line)}</li>" for line in lines] or ["<li>nothing</li>"]
        out.append("</ul><p><strong>Never examined by this framework:</strong></p><ul>")
        out += [f"<li>{e(line)}</li>" for line in exclusions.get("never_examined") or []]
        out.append("</ul></div>")
    out.append("</section>")
    return out


_CHANGE_KINDS = (("newly_broken", "Newly broken"), ("new_places", "Broken in a new place"),
                 ("places_gone", "A place no longer holds the data"), ("fixed", "Fixed"),
                 ("still_broken", "Still broken"), ("not_checked_now", "Broken before, could not be checked now"))


def _render_changes(changes: dict | None) -> list[str]:
    """What changed since the baseline, first thing in the report (a pipeline tracking known
    gaps reads this before anything else)."""
    if not changes:
        return []
    e = html.escape
    out = ['<section class="box" id="changes"><h3>What changed since the last run</h3>',
           f'<p class="muted">Compared with {e(changes.get("baseline") or "")}.</p><ul>']
    shown = False
    for key, label in _CHANGE_KINDS:
        value = changes.get(key) or {}
        if not value:
            continue
        shown = True
        if isinstance(value, dict):
            items = "".join(f"<li><code>{e(cid)}</code>: {e('; '.join(p.get('words') or p.get('id') or '' for p in ps[:8]))}"
                            f"{' …' if len(ps) > 8 else ''}</li>" for cid, ps in value.items())
        else:
            items = "".join(f"<li><code>{e(cid)}</code></li>" for cid in value)
        out.append(f"<li><strong>{e(label)}</strong> ({len(value)})<ul>{items}</ul></li>")
    if not shown:
        out.append("<li>No change in what is broken.</li>")
    out.append("</ul></section>")
    return out


MAX_PLACES_HTML = 20


def _fields_text(fields: dict) -> str:
    return ", ".join(f"{name} ({', '.join(forms)})" if forms else name for name, forms in fields.items())


def _explain(c: dict) -> str:
    """The outcome's meaning for this check: never a claim its record does not bear out (a pass
    with no evidence file, a check not applicable for a reason other than a lacking right)."""
    if c["outcome"] == "passed" and not c.get("evidence"):
        return PASSED_NO_EVIDENCE
    if c["outcome"] == "not applicable":
        return NOT_APPLICABLE_HERE
    return EXPLAIN.get(c["outcome"], "")


def _render_waivers(report: dict) -> list[str]:
    """The waiver file in force and each waiver (what it covers, who approved it and when, until
    when, what it was used for), then those ignored (expired) and those unused."""
    e = html.escape
    out = []
    record = report.get("waivers")
    if record:
        out.append('<section class="box" id="waivers"><h3>Waivers in force</h3>'
                   f'<p>File <code>{e(str(record.get("file") or ""))}</code> SHA-256 '
                   f'<code>{e(str(record.get("sha256") or ""))}</code>. A waiver covers only the clause and '
                   "the places it names; a check stays <em>broken</em> unless every clause it cites and every "
                   "place it broke in is covered.</p>")
        if record.get("in_force"):
            out.append("<table><tr><th>waiver</th><th>covers</th><th>justification</th><th>approver</th>"
                       "<th>approved</th><th>expires</th><th>used by</th></tr>")
            for w in record["in_force"]:
                covers = f"check {w['check']}" if w.get("check") else f"clause {w.get('clause')}"
                covers += f"; places {', '.join(w['places'])}" if w.get("places") else "; every place"
                used = ", ".join(w.get("used_by") or []) or f"unused: {w.get('unused') or 'nothing it covers broke'}"
                out.append(f"<tr><td><code>{e(str(w.get('source')))}</code></td><td>{e(covers)}</td>"
                           f"<td>{e(str(w.get('justification') or ''))}</td><td>{e(str(w.get('approver') or ''))}</td>"
                           f"<td>{e(str(w.get('approved') or 'not recorded'))}</td><td>{e(str(w.get('expires')))}</td>"
                           f"<td>{e(used)}</td></tr>")
            out.append("</table>")
        else:
            out.append("<p>The file holds no waiver in force.</p>")
        out.append("</section>")
    for key, title in (("waivers_ignored", "Waivers ignored"), ("waivers_unused", "Waivers not used in this run")):
        if report.get(key):
            out.append(f'<section class="box"><h3>{title}</h3><ul>')
            out += [f"<li>{e(w)}</li>" for w in report[key]]
            out.append("</ul></section>")
    return out


def _waived_mark(p: dict) -> str:
    w = p.get("waived") or {}
    if not w:
        return ""
    by = ", ".join(w.get("by") or [])
    if w.get("whole"):
        return f' <span class="badge o-waived">waived</span> <span class="muted">{html.escape(by)}</span>'
    return (f' <span class="badge o-waived">waived for {html.escape(", ".join(map(_display_of, w.get("clauses") or [])))}'
            f' only</span> <span class="muted">{html.escape(by)}</span>')


def _for_clause(c: dict, for_clause: str | None) -> str:
    """A check waived for this clause only (a clause waiver) says so beside its real outcome."""
    if for_clause != "waived" or c["outcome"] == "waived":
        return ""
    return (f"<p>For this clause: {_badge(for_clause)} <span class=\"muted\">(a waiver covers this clause; the "
            f"check as a whole is {html.escape(PLAIN.get(c['outcome'], c['outcome']))})</span></p>")


def _render_check(c: dict, for_clause: str | None = None) -> str:
    e = html.escape
    parts = [f'<div class="check" id="check-{e(c["check_id"])}">',
             f'<p>{_badge(c["outcome"])} <strong>{e(c["check_id"])}</strong> '
             + (f'<span class="severity">severity {e(c["severity"])}</span> ' if c.get("severity") else "")
             + f'<span class="muted">— {e(_explain(c))}</span></p>', _for_clause(c, for_clause)]
    if c.get("severity_from", "").startswith("profile"):
        parts.append(f'<p class="muted">Severity set by the {e(c["severity_from"])}.</p>')
    if c["message"]:
        parts.append(f"<pre>{e(c['message'])}</pre>")
    if c.get("examined"):
        parts.append(f'<p class="examined">Examined: {e(describe_examined(c["examined"]))}</p>')
    if c.get("remarks"):
        parts.append("<p>Noted (does not change the outcome):</p><ul>"
                     + "".join(f"<li>{e(r)}</li>" for r in c["remarks"]) + "</ul>")
    if c.get("places"):
        # still broken first, then the waived ones, marked (each list up to the limit)
        waived = [p for p in c["places"] if (p.get("waived") or {}).get("whole")]
        broken = [p for p in c["places"] if not (p.get("waived") or {}).get("whole")]
        shown = broken[:MAX_PLACES_HTML] + waived[:MAX_PLACES_HTML]
        if waived:
            parts.append(f"<p>Still broken in {len(broken)} place(s); waived in {len(waived)}.</p>")
        # each place links to the evidence file, whose findings carry the same place id
        evidence_file = (c.get("evidence") or {}).get("file")
        parts.append("<p>Where, by place:</p><table><tr><th>place</th><th>fields (forms)</th><th>first rows</th>"
                      "<th>matches</th><th>evidence</th></tr>" + "".join(
                          f"<tr><td><code>{e(str(p.get('words') or p.get('id')))}</code>{_waived_mark(p)}</td>"
                          f"<td>{e(_fields_text(p.get('fields') or {}))}</td>"
                          f"<td>{e(', '.join(p.get('rows') or []))}</td><td>{e(str(p.get('count') or ''))}</td>"
                          + (f'<td><a href="{e(evidence_file)}">findings</a> with place <code>{e(str(p.get("id")))}'
                             "</code></td>" if evidence_file else "<td></td>") + "</tr>"
                          for p in shown) + "</table>")
        if len(c["places"]) > len(shown):
            parts.append(f'<p class="muted">… and {len(c["places"]) - len(shown)} more place(s) in the evidence file</p>')
    if c.get("evidence"):
        ev = c["evidence"]
        if ev["stages"]:
            parts.append(f'<p class="muted">Steps recorded: {e(" → ".join(str(s) for s in ev["stages"]))}</p>')
        if ev["findings"] and c["outcome"] != "passed" and not c.get("places"):
            parts.append("<p>Findings, by place:</p><ul>" + "".join(f"<li>{e(f)}</li>" for f in ev["findings"])
                         + "</ul>")
        if ev.get("attachments"):
            # links, not inline images: the report's CSP fetches nothing, and a reader opens the file
            parts.append("<p>Attached: " + ", ".join(
                f'<a href="{e(a["file"])}">{e(a["name"])}</a>' for a in ev["attachments"]) + "</p>")
        parts.append(f'<p class="muted">Evidence: <a href="{e(ev["file"])}"><code>{e(ev["file"])}</code></a> '
                     f'sha256 <code>{e(ev["sha256"])}</code></p>')
    parts.append(f'<p class="muted">Test: <code>{e(c["test"] or "")}</code> · finished {e(c["finished_at"])}</p>')
    parts.append("</div>")
    return "".join(parts)


@dataclass
class Written:
    json_path: Path
    html_path: Path
    manifest_path: Path
    manifest_sha256: str
    report: dict
    signature_path: Path | None = None
    public_key: str | None = None
    problems: list[str] = field(default_factory=list)
    oscal_path: Path | None = None
    pdf_path: Path | None = None


def write_manifest(out_dir: Path, files: list[Path], run: dict) -> tuple[Path, str]:
    seen: dict[str, dict] = {}
    for path in files:
        if path.is_file() and path.name not in (MANIFEST, SIGNATURE):
            rel = _rel(path, out_dir)
            seen[rel] = {"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    data = {"kind": "privacy-checks manifest", "algorithm": "sha256",
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"), "run": run,
            "files": [seen[k] for k in sorted(seen)]}
    path = out_dir / MANIFEST
    _write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False).encode())
    return path, sha256_file(path)


def sign_manifest(manifest: Path, key_pem: str) -> tuple[Path, str]:
    """Sign with an Ed25519 private key (PEM); returns the signature file and the public key (base64)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{SIGNING_KEY_ENV} does not hold an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{SIGNING_KEY_ENV} must hold an Ed25519 key, not {type(key).__name__}")
    signature = key.sign(manifest.read_bytes())
    path = manifest.with_name(SIGNATURE)
    _write_atomic(path, base64.b64encode(signature) + b"\n")
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return path, base64.b64encode(public).decode()


def sign_or_unsign(manifest: Path, key_pem: str | None) -> tuple[Path | None, str | None, str | None]:
    """Sign a manifest just written, or else remove the signature beside it: it signed the
    manifest this one replaced and would no longer verify. Returns (signature file, public key,
    what to tell the user)."""
    if key_pem:
        try:
            return (*sign_manifest(manifest, key_pem), None)
        except ValueError as exc:
            problem = f"manifest not signed: {exc}"
    else:
        problem = None
    stale = manifest.with_name(SIGNATURE)
    if stale.exists():
        stale.unlink()
        problem = ((problem + "; ") if problem else f"manifest not signed ({SIGNING_KEY_ENV} is not set); ") + (
            f"removed the previous {SIGNATURE}, which signed the manifest this one replaced")
    return None, None, problem


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_reports(results_path: Path, out_dir: Path, *, evidence_dir: Path | None = None,
                  extra_files: list[Path] | None = None, waivers_ignored: list[str] | None = None,
                  signing_key: str | None = None, changes: dict | None = None,
                  waivers_unused: list[str] | None = None, pdf: bool = False,
                  pdf_timeout: float | None = None) -> Written:
    """Write the JSON and HTML reports, the OSCAL assessment results, with `pdf` the PDF
    (pdf.py), and the manifest (signed when a key is given)."""
    from .oscal import oscal_documents
    from .pdf import DEFAULT_TIMEOUT_S, REPORT_PDF, add_pdf, remove_stale_pdf

    results = json.loads(Path(results_path).read_text(encoding="utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    evidence_dir = evidence_dir or out_dir / "evidence"
    report = build_report(results, out_dir=out_dir, results_path=Path(results_path), evidence_dir=evidence_dir,
                          waivers_ignored=waivers_ignored, changes=changes, waivers_unused=waivers_unused)
    json_path, html_path = out_dir / REPORT_JSON, out_dir / REPORT_HTML
    _write_atomic(json_path, json.dumps(report, indent=2, ensure_ascii=False).encode())
    _write_atomic(html_path, render_html(report).encode())
    problems = []
    oscal_path: Path | None = out_dir / OSCAL_JSON
    oscal_files = [out_dir / name for name in (OSCAL_JSON, OSCAL_CATALOG)]
    try:
        documents = oscal_documents(report)
    except (KeyError, TypeError, ValueError) as exc:
        # The auditors' report stands on its own: a broken export must not cost it.
        problems.append(f"OSCAL assessment results not written: {exc!r}")
        for path in oscal_files:
            path.unlink(missing_ok=True)  # never leave a previous run's beside this one
        oscal_path, oscal_files = None, []
    else:
        for path in oscal_files:
            _write_atomic(path, documents[path.name])
    evidence = [evidence_dir / f"{c['check_id']}.json" for c in report["checks"]]
    evidence += [out_dir / a["file"] for c in report["checks"] if c["evidence"] for a in c["evidence"]["attachments"]]
    files = [Path(results_path), json_path, html_path, *oscal_files, *evidence,
             *(extra_files or [])]
    if not pdf:
        problems += remove_stale_pdf(out_dir)
    manifest, digest = write_manifest(out_dir, files, report["run"])
    added: list[Path] = []
    if pdf:  # the PDF's cover names the manifest of the files above, so it is printed after it
        added, notes = add_pdf(report, out_dir, manifest, digest, timeout=pdf_timeout or DEFAULT_TIMEOUT_S)
        problems += notes
    if added:
        manifest, digest = write_manifest(out_dir, files + added, report["run"])
    written = Written(json_path, html_path, manifest, digest, report, problems=problems, oscal_path=oscal_path,
                      pdf_path=out_dir / REPORT_PDF if added else None)
    key = signing_key if signing_key is not None else os.environ.get(SIGNING_KEY_ENV)
    written.signature_path, written.public_key, note = sign_or_unsign(manifest, key)
    if note:
        written.problems.append(note)
    return written
