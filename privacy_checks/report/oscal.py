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

Who and what: metadata names the parties (the assessor, the organisation running the tool — the
profile's, else privacy-checks itself — and the operator the run recorded) by role; the tool is
an assessment asset and every observation, finding and risk has it as its `origin`; each
observation's `subjects` are the target and the stores and recipients its check's places name
(local-definitions components). The controls are the suites' checks: `oscal_catalog(report)`
is an OSCAL catalog with one control per check id (its assessment objective `<id>_obj` is what
a finding targets), written beside the results as `oscal-catalog.json`, linked from back-matter
and from reviewed-controls, which include exactly the checks of the run. A waived check (or a
failed one some of whose places a waiver covers) gets one `risk` per waiver with status
`deviation-approved`, the justification, the approver (a party) and the expiry as deadline,
and a risk-log entry recording the approval.

The documents are a pure function of the report's run and checks (UUIDs are uuid5 of the run's
start, run id and check id; last-modified is the run's end), so rebuilding the same results
with `privacy-checks report` writes the same bytes. tests/test_oscal.py validates it with
compliance-trestle's OSCAL 1.1.x models.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath
from urllib.parse import quote

from .. import __version__

OSCAL_VERSION = "1.1.2"
ASSESSMENT_RESULTS_JSON = "oscal-assessment-results.json"
CATALOG_JSON = "oscal-catalog.json"
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


def dumps(doc: dict) -> bytes:
    """The bytes an OSCAL document is written as (and the catalog's digest is taken of)."""
    return json.dumps(doc, indent=2, ensure_ascii=False).encode()


def control_id(check_id: str) -> str:
    """The catalog control of a check: its id, as an OSCAL token."""
    return _token(check_id)


def objective_id(check_id: str) -> str:
    """The control's assessment objective, which a finding targets."""
    return f"{control_id(check_id)}_obj"


def _promise(check: dict) -> str:
    """What the check promises, from its test's name (the suites' test names state the promise:
    `test_deleted_subject_leaves_no_trace`)."""
    name = str(check.get("test") or "").rsplit("::", 1)[-1].split("[", 1)[0]
    name = name.removeprefix("test_").replace("_", " ").strip()
    return (name[:1].upper() + name[1:]) if name else str(check.get("check_id") or "unnamed")


def _place_owner(place_id: str) -> tuple[str, str] | None:
    """("store" | "recipient", name) a place id (findings.py: `table:app/users/email`,
    `recipient:analytics/POST /collect`) names."""
    kind, sep, rest = str(place_id or "").partition(":")
    name = rest.split("/", 1)[0].strip()
    if not sep or not name:
        return None
    return ("recipient" if kind == "recipient" else "store"), name


def _waivers_of(check: dict) -> list[dict]:
    """The waivers that covered a check, wholly (outcome waived) or in part (still failed, some
    places or clauses waived): the compliance report's `waived.waivers`."""
    return [w for w in (check.get("waived") or {}).get("waivers") or [] if isinstance(w, dict)]


def _day_end(value) -> str | None:
    """The last instant of a waiver's expiry date (the last day it holds), in UTC."""
    try:
        day = datetime.fromisoformat(str(value)).date()
    except (TypeError, ValueError):
        return None
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC).isoformat()


class _Run:
    """What both documents derive from one report: its instants, UUIDs and checks (a check
    recorded twice, a failed call and a failed teardown, keeps both entries, keyed apart)."""

    def __init__(self, report: dict):
        self.report = report
        self.run = report.get("run") or {}
        self.target = self.run.get("target") or {}
        self.key = f"{self.run.get('started_at', '')}|{self.target.get('nonce', '')}"
        self.checks = report.get("checks") or []
        finished = [t for t in (_when(c.get("finished_at")) for c in self.checks) if t]
        self.start = _when(self.run.get("started_at")) or min(finished, default=datetime.fromtimestamp(0, UTC))
        self.end = max(_when(self.run.get("finished_at"), self.start), self.start)
        self.target_name = self.target.get("name") or "the target"
        seen: dict[str, int] = {}
        self.keyed = []
        for check in self.checks:
            check_id = str(check.get("check_id") or "unnamed")
            seen[check_id] = seen.get(check_id, 0) + 1
            self.keyed.append((check_id, check_id if seen[check_id] == 1 else f"{check_id}#{seen[check_id]}", check))

    def uid(self, *parts: str) -> str:
        return str(uuid.uuid5(_UUIDS, "|".join((self.key, *parts))))

    def metadata(self, title: str) -> dict:
        # The run's end, not the wall clock: the same results always give the same document.
        return {"title": title, "last-modified": _iso(self.end), "version": __version__,
                "oscal-version": OSCAL_VERSION}


def oscal_catalog(report: dict) -> dict:
    """The suites' checks of this report as an OSCAL catalog: one control per check id, its
    statement the promise (with the clauses it cites, linked to their text) and its assessment
    objective what a pass means."""
    ctx = _Run(report)
    sections: dict[str, list[dict]] = {}
    for reg in report.get("regulations") or []:
        for clause in reg.get("clauses") or []:
            for check_id in clause.get("checks") or []:
                sections.setdefault(check_id, []).append(clause)
    controls, done = [], set()
    for check_id, _, check in ctx.keyed:
        if check_id in done:
            continue
        done.add(check_id)
        cited = list(dict.fromkeys(check.get("clause_ids") or check.get("clauses") or []))
        clauses = sections.get(check_id, [])
        named = "; ".join(f"{c.get('display')} ({c.get('title')})" for c in clauses) or ", ".join(cited)
        control = {
            "id": control_id(check_id),
            "title": check_id,
            "parts": [
                {"id": f"{control_id(check_id)}_smt", "name": "statement",
                 "prose": f"{_promise(check)}." + (f" Cites {named}." if named else "")},
                {"id": objective_id(check_id), "name": "assessment-objective",
                 "prose": f"The check {check_id} passes against the target: the promise held and the check "
                          "examined something (a pass with nothing examined is never counted as held). Any "
                          "other outcome leaves the objective not satisfied."},
            ],
        }
        if cited:
            control["props"] = [_prop("clause", c) for c in cited]
        links = [{"href": c["url"], "rel": "reference", "text": _value(f"{c.get('display')}: {c.get('title')}")}
                 for c in clauses if c.get("url")]
        if links:
            control["links"] = links
        controls.append(control)
    catalog = {"uuid": ctx.uid("catalog"),
               "metadata": ctx.metadata(f"privacy-checks: the checks run against {ctx.target_name}")}
    if controls:
        catalog["controls"] = controls
    return {"catalog": catalog}


def oscal_documents(report: dict) -> dict[str, bytes]:
    """File name -> bytes of the OSCAL documents written beside the compliance report."""
    catalog = dumps(oscal_catalog(report))
    return {ASSESSMENT_RESULTS_JSON: dumps(oscal_assessment_results(report, catalog_bytes=catalog)),
            CATALOG_JSON: catalog}


def _parties(ctx: _Run) -> tuple[dict, dict[str, str]]:
    """metadata's parties, roles and responsible-parties: the assessor (the organisation running
    the tool), the operator the run recorded, and each waiver's approver."""
    operator = ctx.run.get("operator") or {}
    host = ctx.run.get("host")
    framework = ctx.run.get("framework") or {}
    named = (ctx.run.get("assessor") or {}).get("name")
    if named:  # --privacy-assessor: the organisation that stands behind the assessment
        assessor = {"uuid": ctx.uid("party", "assessor"), "type": "organization", "name": _value(named),
                    "remarks": "The assessing organisation (--privacy-assessor); the assessment this document "
                               "records was made with privacy-checks, run by the operator named."}
    else:
        assessor = {"uuid": ctx.uid("party", "assessor"), "type": "organization",
                    "name": "privacy-checks", "short-name": "privacy-checks",
                    "remarks": "No assessing organisation was named (--privacy-assessor): the automated "
                               "assessment this document records was made by the tool, run by the operator named."}
    assessor_props = [_prop(name, value) for name, value in
                      (("host", host), ("version", framework.get("version")), ("commit", framework.get("commit")))
                      if value]
    if assessor_props:
        assessor["props"] = assessor_props
    parties, responsible = [assessor], {"assessor": [assessor["uuid"]]}
    if operator.get("name"):
        person = operator.get("source") in ("--privacy-operator", "the operating system's user")
        party = {"uuid": ctx.uid("party", "operator", str(operator["name"])),
                 "type": "person" if person else "organization", "name": _value(operator["name"])}
        if operator.get("source"):
            party["props"] = [_prop("source", operator["source"])]
        parties.append(party)
        responsible["operator"] = [party["uuid"]]
    approvers: dict[str, str] = {}
    for _, _, check in ctx.keyed:
        for waiver in _waivers_of(check):
            name = _value(waiver.get("approver") or "unknown")
            if name not in approvers:
                approvers[name] = ctx.uid("party", "approver", name)
                parties.append({"uuid": approvers[name], "type": "person", "name": name})
    if approvers:
        responsible["waiver-approver"] = list(approvers.values())
    roles = [{"id": "assessor", "title": "Assessor",
              "description": "Runs the assessment: the organisation running privacy-checks."},
             {"id": "operator", "title": "Operator",
              "description": "Who started the run (--privacy-operator, the CI job or the operating system's user)."},
             {"id": "waiver-approver", "title": "Waiver approver",
              "description": "Accepted a known gap in writing, until the waiver's expiry."}]
    roles = [r for r in roles if r["id"] in responsible]
    return ({"parties": parties, "roles": roles,
             "responsible-parties": [{"role-id": r, "party-uuids": u} for r, u in responsible.items()]},
            approvers)


def _components(ctx: _Run) -> tuple[dict, dict[tuple[str, str], str], str]:
    """The result's local definitions: the target, its stores and recipients (the subjects), and
    the tool with the host it ran on (the assessment assets). Returns them, the uuid of each
    (kind, name), and the tool's uuid."""
    examined = ctx.run.get("examined") or {}
    owners: dict[tuple[str, str], str | None] = {}
    for store in examined.get("stores") or []:
        if store.get("name"):
            owners.setdefault(("store", str(store["name"])), store.get("kind"))
    for recipient in examined.get("recipients") or []:
        if recipient.get("name"):
            owners.setdefault(("recipient", str(recipient["name"])), None)
    for _, _, check in ctx.keyed:
        for place in check.get("places") or []:
            owner = _place_owner(place.get("id"))
            if owner:
                owners.setdefault(owner, None)
    target = {"uuid": ctx.uid("component", "target"), "type": "system", "title": _value(ctx.target_name),
              "description": _value("The system under assessment, driven through its real interfaces"
                                    + (f" at {ctx.target['base_url']}" if ctx.target.get("base_url") else "") + "."),
              "status": {"state": "operational"}}
    components, uuids = [target], {("target", ""): target["uuid"]}
    for (kind, name), store_kind in owners.items():
        uuids[(kind, name)] = ctx.uid("component", kind, name)
        components.append({
            "uuid": uuids[(kind, name)], "type": "service" if kind == "store" else "interconnection",
            "title": _value(f"{kind} {name}"),
            "description": _value(f"A store of the target the checks sweep for the subjects' data ({store_kind})."
                                  if kind == "store" else
                                  "A recipient the target shares data with; the checks read what it received."),
            "status": {"state": "operational"}})
    framework = ctx.run.get("framework") or {}
    tool = {"uuid": ctx.uid("component", "tool"), "type": "software",
            "title": _value(ctx.report.get("framework") or f"privacy-checks {__version__}"),
            "description": "The privacy-checks pytest plugin and suites: synthetic subjects with canary values, "
                           "driven through the target's interfaces, then looked for in every declared store "
                           "and recipient.",
            "status": {"state": "operational"}}
    tool_props = [_prop(name, framework.get(name)) for name in ("version", "commit") if framework.get(name)]
    if tool_props:
        tool["props"] = tool_props
    platform = {"uuid": ctx.uid("platform"), "title": _value(f"host {ctx.run.get('host') or 'unknown'}"),
                "uses-components": [{"component-uuid": tool["uuid"]}]}
    return ({"components": components,
             "assessment-assets": {"components": [tool], "assessment-platforms": [platform]}},
            uuids, tool["uuid"])


def oscal_assessment_results(report: dict, *, catalog_bytes: bytes | None = None) -> dict:
    """The OSCAL `assessment-results` document for one compliance report (see the module doc)."""
    ctx = _Run(report)
    summary = report.get("summary") or {}
    uid, target_name, end = ctx.uid, ctx.target_name, ctx.end
    metadata_parties, approvers = _parties(ctx)
    local, subject_uuids, tool_uuid = _components(ctx)
    origins = [{"actors": [{"type": "tool", "actor-uuid": tool_uuid}]}]
    target_subject = {"subject-uuid": subject_uuids[("target", "")], "type": "component",
                      "title": _value(target_name)}

    observations, findings, risks = [], [], []
    for check_id, key, check in ctx.keyed:
        outcome = check.get("outcome") or "skipped"
        described = (check.get("message") or "").strip() or (
            f"{check_id}: {outcome}; " + (report.get("outcomes_explained") or {}).get(outcome, outcome))
        subjects, by_owner = [dict(target_subject)], {}
        for place in check.get("places") or []:
            owner = _place_owner(place.get("id"))
            if owner is None:
                continue
            if owner not in by_owner:
                by_owner[owner] = {"subject-uuid": subject_uuids[owner], "type": "component",
                                   "title": _value(f"{owner[0]} {owner[1]}"), "props": []}
                subjects.append(by_owner[owner])
            by_owner[owner]["props"].append(_prop("place", place["id"]))
        observation = {
            "uuid": uid("observation", key),
            "title": check_id,
            "description": described,
            "props": [_prop("outcome", outcome)],
            "methods": ["TEST"],
            "origins": origins,
            "subjects": subjects,
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
            # the assessment objective of the check's control in oscal-catalog.json
            "type": "objective-id",
            "target-id": objective_id(check_id),
            "title": check_id,
            "status": {"state": state, "reason": reason},
        }
        if outcome == "not applicable":
            finding_target["implementation-status"] = {"state": "not-applicable"}
        finding = {
            "uuid": uid("finding", key),
            "title": f"{check_id}: {check.get('outcome_in_words') or outcome}",
            "description": described,
            "props": [_prop("outcome", outcome), *(_prop("clause", c) for c in cited)],
            "origins": origins,
            "target": finding_target,
            "related-observations": [{"observation-uuid": observation["uuid"]}],
        }
        for number, waiver in enumerate(_waivers_of(check), start=1):
            risks.append(_risk(ctx, key, number, check_id, outcome, described, waiver, observation["uuid"],
                               approvers, origins, check.get("places") or []))
            finding.setdefault("related-risks", []).append({"risk-uuid": risks[-1]["uuid"]})
        findings.append(finding)

    plan_uuid = uid("assessment-plan")
    plan = {
        "uuid": plan_uuid,
        "title": "privacy-checks assessment plan",
        "description": f"The privacy-checks suites run against {target_name} with "
                       f"{report.get('framework') or 'privacy-checks'}: each check drives the target as a "
                       "data subject would and observes its stores and outbound traffic. The checks are the "
                       f"controls of {CATALOG_JSON}.",
    }
    plan_props = [_prop(name, ctx.target[key]) for name, key in
                  (("target", "name"), ("target-url", "base_url"), ("run-id", "nonce")) if ctx.target.get(key)]
    plan_props += [_prop("ledger-run", r) for r in ctx.run.get("run_ids") or []]
    if ctx.run.get("command"):
        plan_props.append(_prop("command", ctx.run["command"]))
    if plan_props:
        plan["props"] = plan_props
    catalog_rlink = {"href": quote(CATALOG_JSON), "media-type": "application/oscal.catalog+json"}
    if catalog_bytes is not None:
        catalog_rlink["hashes"] = [{"algorithm": "SHA-256", "value": hashlib.sha256(catalog_bytes).hexdigest()}]
    plan["rlinks"] = [catalog_rlink]
    catalog_resource = {"uuid": uid("catalog-resource"),
                        "title": "The suites' checks as an OSCAL catalog",
                        "description": "One control per check id of this run: its statement is the promise "
                                       "and the clauses it cites, its assessment objective what a pass means. "
                                       "Each finding targets one of these objectives.",
                        "rlinks": [catalog_rlink]}
    resources = [plan, catalog_resource]

    result: dict = {
        "uuid": uid("result"),
        "title": f"privacy-checks run against {target_name}",
        "description": summary.get("in_words") or f"privacy-checks run against {target_name}.",
        "start": _iso(ctx.start),
        "end": _iso(end),
        "local-definitions": local,
    }
    if summary.get("verdict"):
        result["props"] = [_prop("verdict", summary["verdict"])]
    if ctx.run.get("results_file"):
        source = {"uuid": uid("results"), "title": "The run's per-check results (privacy-results.json)",
                  "rlinks": [{"href": _href(ctx.run["results_file"]), "media-type": "application/json"}]}
        if ctx.run.get("results_sha256"):
            source["rlinks"][0]["hashes"] = [{"algorithm": "SHA-256", "value": ctx.run["results_sha256"]}]
        resources.append(source)
        result["links"] = [{"href": f"#{source['uuid']}", "rel": "reference",
                            "text": "the per-check results these findings were built from"}]
    control_ids = list(dict.fromkeys(control_id(check_id) for check_id, _, _ in ctx.keyed))
    selection = ({"description": "The checks of this run's suites (run or not), each a control of the catalog.",
                  "include-controls": [{"control-id": c} for c in control_ids]} if control_ids else
                 {"description": "No check was part of this run."})
    result["reviewed-controls"] = {
        "description": "The checks of this run, as controls of the catalog in back-matter. The law clauses "
                       "each check cites are the `clause` props of its finding; those below are the sections "
                       "cited in this run.",
        "links": [{"href": f"#{catalog_resource['uuid']}", "rel": "reference",
                   "text": "the catalog of the suites' checks"}],
        "control-selections": [selection],
    }
    clause_props = [_prop("clause", f"{r['family']}:{'Art. ' if r['family'] in ('gdpr', 'eprivacy') else ''}{c['clause']}")
                    for r in report.get("regulations") or [] for c in r.get("clauses") or []]
    if clause_props:
        result["reviewed-controls"]["props"] = clause_props
    if observations:  # the model wants these arrays non-empty when present
        result["observations"] = observations
    if risks:
        result["risks"] = risks
    if findings:
        result["findings"] = findings

    return {"assessment-results": {
        "uuid": uid("assessment-results"),
        "metadata": {**ctx.metadata(f"privacy-checks assessment results: {target_name}"), **metadata_parties},
        # import-ap is required and must be a URI reference to the assessment plan. The plan is
        # the suites and the target profile, which have no OSCAL form, so the reference is a
        # fragment naming a back-matter resource that describes them: the way OSCAL refers to
        # something inside the same document.
        "import-ap": {"href": f"#{plan_uuid}"},
        "results": [result],
        "back-matter": {"resources": resources},
    }}


def _risk(ctx: _Run, key: str, number: int, check_id: str, outcome: str, described: str, waiver: dict,
          observation_uuid: str, approvers: dict[str, str], origins: list[dict], check_places: list[dict]) -> dict:
    """A waiver that covered (part of) a broken check: an accepted deviation."""
    approver = _value(waiver.get("approver") or "unknown")
    justification = _value(waiver.get("justification") or "no justification recorded")
    expires = waiver.get("expires")
    covers = waiver.get("check") and f"check {waiver['check']}" or waiver.get("clause") and f"clause {waiver['clause']}"
    places = [str(p) for p in waiver.get("places") or []]
    # the places this waiver covered (a waived place names its waivers; pytest_hooks._mark_waived)
    covered = [str(p.get("id")) for p in check_places
               if waiver.get("source") and waiver["source"] in ((p.get("waived") or {}).get("by") or [])]
    risk = {
        "uuid": ctx.uid("risk", key, str(waiver.get("source") or number)),
        "title": f"Accepted deviation: {check_id}",
        "description": justification,
        "statement": described,
        "props": [_prop("outcome", outcome), _prop("approver", approver), _prop("expires", expires or "unknown"),
                  *([_prop("waiver", waiver["source"])] if waiver.get("source") else []),
                  *([_prop("covers", covers)] if covers else []), *(_prop("place-pattern", p) for p in places),
                  *(_prop("place", p) for p in covered)],
        "status": "deviation-approved",
        "origins": origins,
        "related-observations": [{"observation-uuid": observation_uuid}],
    }
    deadline = _day_end(expires)
    if deadline:
        risk["deadline"] = deadline  # the waiver holds until the end of its expiry date
    approved = _when(f"{waiver['approved']}T00:00:00+00:00") if waiver.get("approved") else None
    entry = {"uuid": ctx.uid("risk-log", key, str(waiver.get("source") or number)),
             "title": "Deviation approved",
             "description": _value(f"Approved by {approver}: {justification} Valid until {expires or 'unknown'} "
                                   "(the last day it holds)."),
             "start": _iso(approved or ctx.start),
             "status-change": "deviation-approved",
             "logged-by": [{"party-uuid": approvers[approver], "role-id": "waiver-approver"}]}
    if deadline and _when(deadline) >= (approved or ctx.start):
        entry["end"] = deadline
    risk["risk-log"] = {"entries": [entry]}
    return risk
