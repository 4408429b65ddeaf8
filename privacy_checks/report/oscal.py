"""The compliance report as an OSCAL Assessment Results document (OSCAL 1.1.2, JSON model).

`oscal_assessment_results(report)` turns the dict `compliance.build_report` returns into the
`assessment-results` root that GRC tools read: one `result` for the run, and per check one
`observation` (what was tested, pointing at its evidence file) and one `finding` (whether the
promise held). It uses only what the compliance report holds (already redacted: plain
messages, relative evidence paths, digests); no evidence contents are copied.

How outcomes map: OSCAL's objective status has only `satisfied` and `not-satisfied`, so only
*passed* is `satisfied` (reason `pass`) and *failed* is `not-satisfied` (reason `fail`). Every
other outcome (error, not verified, not applicable, waived, skipped) is `not-satisfied` with
reason `other`, because nothing was shown to hold; the real outcome is the `outcome` prop
(namespace NS), and *not applicable* also sets implementation-status `not-applicable`.

The document is a pure function of the report's run and checks (UUIDs are uuid5 of the run's
start, run id and check id; last-modified is the run's end), so rebuilding the same results
with `privacy-checks report` writes the same bytes. tests/test_oscal.py validates it with
compliance-trestle's OSCAL 1.1.x models.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import quote

from .. import __version__

OSCAL_VERSION = "1.1.2"
# Namespace of this project's props (the same reserved host as the JSON schemas' $id).
NS = "https://privacy-checks.invalid/ns/oscal"
_UUIDS = uuid.uuid5(uuid.NAMESPACE_URL, NS)

# OSCAL token (an XML NCName): what a target-id must match.
_TOKEN_START = "_A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c-\u200d\u2070-\u218f" \
               "\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd"
_NOT_TOKEN = re.compile(f"[^{_TOKEN_START}\\-.0-9\u00b7\u0300-\u036f\u203f-\u2040]")
_STATUS = {"passed": ("satisfied", "pass"), "failed": ("not-satisfied", "fail")}


def _token(text: str) -> str:
    token = _NOT_TOKEN.sub("_", text) or "_"
    return token if re.match(f"[{_TOKEN_START}]", token) else "_" + token


def _value(text) -> str:
    """A prop value: OSCAL's string type forbids leading/trailing whitespace and empty values."""
    return " ".join(str(text).split()) or "unknown"


def _prop(name: str, value) -> dict:
    return {"name": name, "ns": NS, "value": _value(value)}


def _when(value, fallback: datetime | None = None) -> datetime | None:
    """A timezone-aware instant from an ISO string (a naive one is taken as UTC)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return fallback
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _href(path: str) -> str:
    """A URI reference for a path the compliance report gives: relative to reports/ as written,
    an absolute one as a file: URI."""
    if PurePosixPath(path).is_absolute():
        return PurePosixPath(path).as_uri()
    return quote(path)


def oscal_assessment_results(report: dict) -> dict:
    """The OSCAL `assessment-results` document for one compliance report (see the module doc)."""
    run = report.get("run") or {}
    target = run.get("target") or {}
    summary = report.get("summary") or {}
    run_key = f"{run.get('started_at', '')}|{target.get('nonce', '')}"

    def uid(*parts: str) -> str:
        return str(uuid.uuid5(_UUIDS, "|".join((run_key, *parts))))

    checks = report.get("checks") or []
    finished = [t for t in (_when(c.get("finished_at")) for c in checks) if t]
    start = _when(run.get("started_at")) or min(finished, default=datetime.fromtimestamp(0, UTC))
    end = max(_when(run.get("finished_at"), start), start)
    target_name = target.get("name") or "the target"

    observations, findings, seen = [], [], {}
    for check in checks:
        check_id = str(check.get("check_id") or "unnamed")
        # A check recorded twice (a failed call and a failed teardown) keeps both entries.
        seen[check_id] = seen.get(check_id, 0) + 1
        key = check_id if seen[check_id] == 1 else f"{check_id}#{seen[check_id]}"
        outcome = check.get("outcome") or "skipped"
        described = (check.get("message") or "").strip() or (
            f"{check_id}: {outcome}; " + (report.get("outcomes_explained") or {}).get(outcome, outcome))
        observation = {
            "uuid": uid("observation", key),
            "title": check_id,
            "description": described,
            "props": [_prop("outcome", outcome)],
            "methods": ["TEST"],
            "collected": _iso(_when(check.get("finished_at"), end)),
        }
        if check.get("test"):
            observation["props"].append(_prop("test", check["test"]))
        evidence = check.get("evidence")
        if evidence and evidence.get("file"):
            relevant = {"href": _href(evidence["file"]),
                        "description": "What the check did and saw: its stages, findings and redacted "
                                       "HTTP exchanges."}
            if evidence.get("sha256"):
                relevant["props"] = [_prop("sha256", evidence["sha256"])]
            observation["relevant-evidence"] = [relevant]
        observations.append(observation)

        state, reason = _STATUS.get(outcome, ("not-satisfied", "other"))
        # The stable ids ('ccpa:1798.105(c)'); a report without them has only the display names.
        cited = dict.fromkeys(check.get("clause_ids") or check.get("clauses") or [])
        finding_target = {
            # No OSCAL catalog exists for these laws: each check is an assessment objective of
            # the suites, named by its check id; the clauses it cites are props.
            "type": "objective-id",
            "target-id": _token(check_id),
            "title": check_id,
            "status": {"state": state, "reason": reason},
        }
        if outcome == "not applicable":
            finding_target["implementation-status"] = {"state": "not-applicable"}
        findings.append({
            "uuid": uid("finding", key),
            "title": f"{check_id}: {check.get('outcome_in_words') or outcome}",
            "description": described,
            "props": [_prop("outcome", outcome), *(_prop("clause", c) for c in cited)],
            "target": finding_target,
            "related-observations": [{"observation-uuid": observation["uuid"]}],
        })

    plan_uuid = uid("assessment-plan")
    plan = {
        "uuid": plan_uuid,
        "title": "privacy-checks assessment plan",
        "description": f"The privacy-checks suites run against {target_name} with "
                       f"{report.get('framework') or 'privacy-checks'}: each check drives the target as a "
                       "data subject would and observes its stores and outbound traffic.",
    }
    plan_props = [_prop(name, target[key]) for name, key in
                  (("target", "name"), ("target-url", "base_url"), ("run-id", "nonce")) if target.get(key)]
    if plan_props:
        plan["props"] = plan_props
    resources = [plan]

    result: dict = {
        "uuid": uid("result"),
        "title": f"privacy-checks run against {target_name}",
        "description": summary.get("in_words") or f"privacy-checks run against {target_name}.",
        "start": _iso(start),
        "end": _iso(end),
    }
    if summary.get("verdict"):
        result["props"] = [_prop("verdict", summary["verdict"])]
    if run.get("results_file"):
        source = {"uuid": uid("results"), "title": "The run's per-check results (privacy-results.json)",
                  "rlinks": [{"href": _href(run["results_file"]), "media-type": "application/json"}]}
        if run.get("results_sha256"):
            source["rlinks"][0]["hashes"] = [{"algorithm": "SHA-256", "value": run["results_sha256"]}]
        resources.append(source)
        result["links"] = [{"href": f"#{source['uuid']}", "rel": "reference",
                            "text": "the per-check results these findings were built from"}]
    # No OSCAL catalog exists for these laws, so no control ids are invented: the selection is
    # everything the plan covers, and the clauses cited are props (section ids, registry order).
    result["reviewed-controls"] = {
        "description": "Every promise the suites checked. The law clauses each check cites are the "
                       "`clause` props of its finding; those below are the sections cited in this run.",
        "control-selections": [{"include-all": {}}],
    }
    clause_props = [_prop("clause", f"{r['family']}:{'Art. ' if r['family'] in ('gdpr', 'eprivacy') else ''}{c['clause']}")
                    for r in report.get("regulations") or [] for c in r.get("clauses") or []]
    if clause_props:
        result["reviewed-controls"]["props"] = clause_props
    if observations:  # the model wants these arrays non-empty when present
        result["observations"], result["findings"] = observations, findings

    return {"assessment-results": {
        "uuid": uid("assessment-results"),
        "metadata": {
            "title": f"privacy-checks assessment results: {target_name}",
            # The run's end, not the wall clock: the same results always give the same document.
            "last-modified": _iso(end),
            "version": __version__,
            "oscal-version": OSCAL_VERSION,
        },
        # import-ap is required and must be a URI reference to the assessment plan. The plan is
        # the suites and the target profile, which have no OSCAL form, so the reference is a
        # fragment naming a back-matter resource that describes them: the way OSCAL refers to
        # something inside the same document.
        "import-ap": {"href": f"#{plan_uuid}"},
        "results": [result],
        "back-matter": {"resources": resources},
    }}
