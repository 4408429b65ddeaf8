"""The access (right to know, portability) and correction procedures shared by the suites.

Access, in order:
1. the subject and a decoy are created and act, so both have data in every store;
2. positive control and barrier: both are visible in the stores before anything is asked,
   so the decoy's data is in the records the export is built from (an export that could
   not have contained the decoy proves nothing about leaking it); logging in with the
   password proves the target holds it;
3. the verified access request, through the target's own operations; the export is
   obtained as the profile describes and read strictly (observe/exports.py);
4. the decoy's own export: the export observer sees the decoy's data when it is the decoy's;
5. verification: a wrong code, then another subject's session; each must yield none of the
   subject's data. A properly verified request (the control) must succeed — step 3 is it,
   and step 6 runs after the attempts, so a request wrongly let through has had time to be
   processed before its export is fetched (the barrier);
6. a second access request within 12 months (Cal. Civ. Code §1798.130(b)).

Correction: the old values are seen in the stores and at the recipients (positive control);
the correction is requested; the new values must appear wherever the old ones were, a later
write by a barrier subject must be visible, and then the old values must be gone outside the
declared exceptions, and each recipient of the old values must have received the new ones.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import PrivacyChecksError, TargetError, UnexpectedStatus
from ..observe import exports as ex
from ..observe import sinks as sink_obs
from ..observe.forms import Needle
from ..observe.password_hashes import hash_scheme
from ..observe.store_sink import NothingRecorded, store_sink_hits
from ..observe.stores import sweep
from ..operations import shared_fields
from ..outcomes import ControlFailed, NotVerified, settle, stage
from ..places import Places
from ..retention import exceptions_from_profile, split_allowed
from ..runtime import store_specs
from ..subjects import category_table

# 11 CCR §7024(d): never disclosed, only said to be held. A key named like these is supporting
# evidence shown with the verdict ("password": "[hidden]" says only that one is held); the
# verdict rests on values: the subject's own (any sweep form) or a salted hash of its password.
FORBIDDEN_KEY = re.compile(
    r"(?i)(^|[_\-. ])(password|passwd|pwd|password_hash|security_(question|answer)s?|ssn|social_security"
    r"|drivers?_licen[cs]e|passport(_number)?|account_number|health_insurance|medical_id|biometric)"
    r"($|[_\-. ])")

ALL_PARTS = frozenset({"decoy", "verification", "second", "renditions"})


def never_disclose(field_name: str) -> bool:
    return bool(category_table().get(field_name, {}).get("never_disclose", False))


@dataclass
class AccessOutcome:
    error: str | None = None
    subject: Any = None
    export: ex.Export | None = None
    request_id: str | None = None
    expected: list[str] = field(default_factory=list)  # fields the export must hold
    missing: list[str] = field(default_factory=list)
    weak_missing: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)
    decoy_error: str | None = None
    decoy_found: list[str] = field(default_factory=list)
    others_messages: list[str] = field(default_factory=list)  # the decoy's contributions, where in the export
    shared_looked_for: int = 0  # the decoy's contributions looked for
    renditions: dict[str, ex.Export | str] = field(default_factory=dict)
    schema_errors: dict[str, list[str]] = field(default_factory=dict)
    unstructured: dict[str, list[str]] = field(default_factory=dict)  # rendition -> fields only in prose
    categories_error: str | None = None
    categories_expected: dict[str, list[str]] = field(default_factory=dict)  # category -> fields
    categories_listed: list[str] = field(default_factory=list)
    verification_error: str | None = None
    verification_problems: list[str] = field(default_factory=list)
    verification_attempts: list[str] = field(default_factory=list)
    second_error: str | None = None
    second_problem: str | None = None
    blind: str | None = None  # the export showed none of the subject's own data
    places: dict[str, str] = field(default_factory=dict)  # place -> the field only it holds, found ("" = not)
    places_missing: list[str] = field(default_factory=list)
    places_undistinguished: list[str] = field(default_factory=list)
    wrong_request: dict | None = None  # the wrong-code request, judged after the barrier
    log: list[str] = field(default_factory=list)
    skip: Exception | None = None
    parts_read: int = 0  # parts of the export parsed (files of an archive, a document)
    secret_fields: list[str] = field(default_factory=list)  # §7024(d) fields looked for by value
    hashes_verified: int = 0  # salted-hash-shaped values checked against the subject's password
    forbidden_keys: list[str] = field(default_factory=list)  # keys named like §7024(d) items: evidence only
    categories_unstated: str | None = None  # the profile is silent on where categories are listed
    categories_lacking: str | None = None  # the profile says the export lists none (lacks.export_categories)
    verification_unstated: str | None = None  # the profile declares no verification flow
    verification_lacking: str | None = None  # the profile says the target verifies nobody (lacks.verification)
    second_made: bool = False  # a second access request was made and answered


def _fields_found(export: ex.Export, needles: list[Needle], structured: bool = False) -> dict[str, str]:
    """field -> where (part name and form) for each needle found."""
    out: dict[str, str] = {}
    for part, m in export.find(needles, structured=structured):
        out.setdefault(m.needle.field, f"{part} ({m.form})")
    return out


def _wait_in_stores(specs, must_hold: set[str], subjects, timeout: float) -> list[str]:
    """Poll until every subject is seen in every store that must hold it; what is still missing."""
    deadline = time.monotonic() + timeout
    while True:
        res = sweep(specs, [n for s in subjects for n in s.needles(s.strong_fields())])
        seen: dict[str, set[str]] = {}
        for h in res.hits:
            if not h.weak:  # a coincidence (an instant to the second) shows nothing
                seen.setdefault(h.subject_id, set()).add(h.store)
        missing = [f"{s.role} {s.canary} in {', '.join(sorted(must_hold - seen.get(s.id, set())))}"
                   for s in subjects if must_hold - seen.get(s.id, set())]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.3)


def run_access(run, *, test_id: str, evidence, parts=ALL_PARTS) -> AccessOutcome:
    """Run the access procedure; never raises for a broken promise (the outcome records it)."""
    out = AccessOutcome()
    return settle(out, _access, run, test_id, evidence, out, frozenset(parts))


def _access(run, test_id: str, evidence, out: AccessOutcome, parts: frozenset[str]) -> None:
    target, profile = run.target, run.profile
    if not target.has_operation("export"):
        raise NotVerified(f"{profile.name}: the profile declares no 'export' operation, so the right to know "
                          "cannot be exercised (declare it, or not_offered.know with the reason)")
    propagation = float(profile.timeouts.get("propagation", 30))
    specs = store_specs(profile)
    must_hold = {s["name"] for s in profile.stores if s.get("expect_subject", True)}

    subject = run.create_subject(test_id, role="subject")
    decoy = run.create_subject(test_id, role="decoy") if "decoy" in parts else None
    out.subject = subject
    for s in (subject, decoy):
        if s is not None and target.has_operation("activity"):
            target.run("activity", s)
    if target.has_operation("login"):
        target.run("login", subject)
        out.log.append("the target holds the password: logging in with it succeeded")
    shared = shared_fields(profile, subject.strategies) if decoy is not None else []
    if decoy is not None and target.has_operation("interact"):
        # the subject and the decoy share a space and each writes into it
        target.run("interact", subject, others={"decoy": decoy, "control": decoy})
    evidence.stage("subjects created", subject=subject.canary, decoy=decoy.canary if decoy else None,
                   interacted=shared)

    # -- 2. positive control and barrier: both are in the records the export is built from ---
    missing = _wait_in_stores(specs, must_hold, [s for s in (subject, decoy) if s], propagation)
    if missing:
        raise ControlFailed("positive control failed: never seen in the stores within "
                            f"{propagation:.0f} s: {'; '.join(missing)}")
    census_result = sweep(specs, subject.needles(subject.strong_fields()) + (decoy.needles(shared) if shared else []))
    census = census_result.hits
    evidence.stage("stores read before the request", queries=census_result.shown_queries())
    observed = {h.field for h in census if h.subject_id == subject.id}
    places = Places.of(census, subject.id)
    decoy_shared_seen = sorted({h.field for h in census if decoy is not None and h.subject_id == decoy.id})

    # -- 3. the verified request and its export ------------------------------------------------
    result = target.run("export", subject)
    out.request_id = subject.captured.get("request_id")
    first_request = dict(subject.captured)
    export = ex.obtain(target, subject, result=result)
    out.export = export
    evidence.stage("export obtained", request_id=out.request_id, export=export.describe(),
                   problems=export.format_problems())

    # Owed: the specific pieces the target holds. A field it was given but lawfully discards
    # (seen in no store) is not, and is looked for below only as a weak extra.
    strong = [f for f in subject.strong_fields() if not never_disclose(f) and f in observed]
    weak = [f for f in subject.fields if f not in strong and not never_disclose(f)]
    out.expected = strong
    found = _fields_found(export, subject.needles(strong + weak))
    out.missing = [f for f in strong if f not in found]
    out.weak_missing = [f for f in weak if f not in found]
    if not set(strong) & set(found):
        # incompleteness is then plain to see; what the export lets in cannot be judged
        out.blind = (f"positive control failed: the export at {export.source} holds none of the subject's data "
                     f"({export.describe()}), so the absence of anything else in it proves nothing")
    _places(places, found, subject, out)
    out.parts_read = len(export.parts)
    out.secret_fields = secret_fields = [f for f in subject.fields if never_disclose(f)]
    for fname, where in _fields_found(export, subject.needles(secret_fields)).items():
        out.forbidden.append(f"field {fname} found in {where}")
    password = subject.fields.get("password")
    for part in export.parts:
        for path in _forbidden_keys(part.data):
            out.forbidden_keys.append(f"{part.name}: key {path}")
        if password and "password" in secret_fields:
            for path, value in _hash_shaped(part.data):
                out.hashes_verified += 1
                scheme = hash_scheme(value, password)
                if scheme:
                    out.forbidden.append(f"{part.name}: key {path} holds a salted {scheme} hash of the subject's "
                                         "password (it can be attacked offline)")
    evidence.stage("export judged", found=found, missing=out.missing, weak_missing=out.weak_missing,
                   forbidden=out.forbidden, hashes_verified=out.hashes_verified,
                   keys_named_like_forbidden_items=out.forbidden_keys)
    evidence.stage("export judged by place", places=out.places, missing=out.places_missing,
                   cannot_tell_apart=out.places_undistinguished)

    _categories(profile, export, observed, subject, out)

    # -- renditions: each must be machine-readable and valid ----------------------------------
    schema = ex.schema_path(profile)
    extra = [n for n in ex.renditions(profile) if n != "primary"]
    for name in ["primary", *(extra if "renditions" in parts else [])]:
        try:
            rend = export if name == "primary" else ex.obtain(target, subject, first_request, rendition=name)
        except PrivacyChecksError as exc:
            out.renditions[name] = str(exc)
            continue
        out.renditions[name] = rend
        out.schema_errors[name] = ex.validate(rend, schema) if rend.machine_readable else []
        everywhere = _fields_found(rend, subject.needles(strong))
        structured = _fields_found(rend, subject.needles(strong), structured=True)
        out.unstructured[name] = sorted(set(everywhere) - set(structured))
    for name, piece in export.pieces.items():
        # an export made of several responses: each part must be machine-readable on its own
        label = f"part {name}"
        out.renditions[label] = piece
        out.schema_errors[label] = []
        out.unstructured[label] = sorted(set(_fields_found(piece, subject.needles(strong)))
                                         - set(_fields_found(piece, subject.needles(strong), structured=True)))
    evidence.stage("renditions", **{n: (r.describe() if isinstance(r, ex.Export) else r)
                                    for n, r in out.renditions.items()},
                   schema=str(schema), schema_errors=out.schema_errors)

    # -- 4. the decoy ---------------------------------------------------------------------------
    if decoy is not None:
        try:
            dres = target.run("export", decoy)
            own = ex.obtain(target, decoy, result=dres)
            if not _fields_found(own, decoy.needles(decoy.strong_fields())):
                raise ControlFailed(f"the decoy's own export ({own.describe()}) holds none of its data")
        except PrivacyChecksError as exc:
            out.decoy_error = (f"positive control failed: the decoy {decoy.canary}'s own export could not be "
                               f"read, so its absence from the subject's export proves nothing: {exc}")
        # a weak value the subject shares (two documentation-range IPs can coincide) proves nothing
        mine = set(subject.fields.values())
        decoy_needles = [n for n in decoy.needles() if (not n.weak or n.value not in mine) and n.field not in shared]
        for fname, where in _fields_found(export, decoy_needles).items():
            out.decoy_found.append(f"the decoy's {fname} in {where}")
        _shared_space(export, decoy, shared, decoy_shared_seen, out)
        evidence.stage("decoy", decoy=decoy.canary, control_error=out.decoy_error, found=out.decoy_found,
                       shared_fields=shared, decoy_contributions_seen_in_stores=decoy_shared_seen,
                       others_messages=out.others_messages)

    if "verification" in parts:
        missing_ops = [op for op in ("request_access", "fetch_code", "verify_request") if not target.has_operation(op)]
        if profile.lacks.get("verification"):
            out.verification_lacking = profile.lacks["verification"]
        elif missing_ops:
            out.verification_unstated = (f"the profile declares no {', '.join(missing_ops)} operation(s), so a "
                                         "wrongly verified request cannot be submitted; declare request_access, "
                                         "fetch_code and verify_request, or state lacks.verification: <reason>")
        else:
            try:
                _verification(run, subject, decoy, first_request, out, evidence)
            except PrivacyChecksError as exc:
                out.verification_error = str(exc)
    if "second" in parts or "verification" in parts:
        _second(run, subject, strong, out, evidence)


def _places(places: Places, found: dict[str, str], subject, out: AccessOutcome) -> None:
    """Every place the census saw the subject in must be in the export, shown by a value only it
    holds; a place whose values are all held elsewhere too cannot be judged, and is named."""
    secret = [f for f in subject.fields if never_disclose(f)]
    for place, own in sorted(places.own_values(exclude=secret).items()):
        if not own:
            held = sorted(places.fields[place])
            out.places_undistinguished.append(f"{place} (its {', '.join(held)} {'is' if len(held) == 1 else 'are'} "
                                              "held elsewhere too)")
            continue
        shown = [f for f in own if f in found]
        out.places[place] = shown[0] if shown else ""
        if not shown:
            out.places_missing.append(f"{place} (shown by {', '.join(own)}, which only that place holds)")


def _shared_space(export: ex.Export, decoy, shared: list[str], seen: list[str], out: AccessOutcome) -> None:
    """The decoy's contributions to the space it shares with the subject are the decoy's: the
    subject's export must hold none of them (GDPR Art. 15(4); Cal. Civ. Code §1798.100, §1798.110:
    personal information "about the consumer")."""
    if not shared:
        return
    if not seen:
        out.decoy_error = out.decoy_error or (
            f"positive control failed: the decoy {decoy.canary}'s contributions to the shared space "
            f"({', '.join(shared)}) were never seen in the stores, so their absence from the export proves nothing "
            "(does 'interact' write them?)")
        return
    out.shared_looked_for = len(decoy.needles(shared))
    for needle in decoy.needles(shared):
        for where in export.locate(needle.value):
            out.others_messages.append(f"the decoy's {needle.field} at {where}")
    if not out.others_messages:
        # a form the locator does not follow (an encoding) is still found, by part
        for fname, where in _fields_found(export, decoy.needles(shared)).items():
            out.others_messages.append(f"the decoy's {fname} in {where}")


def _export_link(profile) -> str:
    """The primary export link: what another session or a wrongly verified request is tried on."""
    links = ex.renditions(profile)
    if not links:
        raise TargetError("a wrongly verified request's export can only be fetched through a link, and the profile "
                          "declares none (export.link or export.renditions)")
    return next(iter(links.values()))


MAX_HASHES = 50  # salted-hash checks per export part: each costs what one login costs


def _hash_shaped(data: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, value) of string values shaped like a stored password hash ($ or : separated)."""
    out: list[tuple[str, str]] = []
    if isinstance(data, dict):
        items = [(f"{path}.{k}" if path else str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(data[:1000])]
    else:
        return [(path or "(document)", data)] if isinstance(data, str) and HASH_SHAPE.match(data) else []
    for p, v in items:
        out += _hash_shaped(v, p)
        if len(out) >= MAX_HASHES:
            return out[:MAX_HASHES]
    return out


HASH_SHAPE = re.compile(r"^\$?(pbkdf2|scrypt|2[abxy]|argon2)[^\s]{20,1000}$")


def _forbidden_keys(data: Any, path: str = "") -> list[str]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            p = f"{path}.{k}" if path else str(k)
            if FORBIDDEN_KEY.search(str(k)) and v not in (None, "", [], {}, False):
                out.append(p)
            out += _forbidden_keys(v, p)
    elif isinstance(data, list):
        for i, v in enumerate(data[:1000]):
            out += _forbidden_keys(v, f"{path}[{i}]")
    return out


def _categories(profile, export: ex.Export, observed: set[str], subject, out: AccessOutcome) -> None:
    for fname in sorted(observed):
        for cat in subject.categories(fname):
            out.categories_expected.setdefault(cat, []).append(fname)
    path = (profile.data.get("export") or {}).get("categories")
    if profile.lacks.get("export_categories"):
        out.categories_lacking = profile.lacks["export_categories"]
        return
    if not path:
        out.categories_unstated = ("the profile does not say where the export lists the categories of personal "
                                   "information (export.categories), so whether it lists them cannot be read; "
                                   "declare the path, or state lacks.export_categories: <reason>")
        return
    from ..target import lookup

    listed = lookup(export.document(), path)
    if not isinstance(listed, list):
        out.categories_error = f"the export has no list of categories at {path!r} ({export.describe()})"
        return
    out.categories_listed = [str(c) for c in listed]


def _verification(run, subject, decoy, first_request: dict, out: AccessOutcome, evidence) -> None:
    target = run.target
    needles = subject.needles(subject.strong_fields())

    def leaked(export: ex.Export) -> list[str]:
        return [f"{f} in {w}" for f, w in _fields_found(export, needles).items()]

    # a wrong code: one the target did not send
    wrong = {k: v for k, v in subject.captured.items() if k not in ("request_id", "code")}
    target.run("request_access", subject, wrong)
    target.run("fetch_code", subject, wrong)
    real = str(wrong["code"])
    wrong["code"] = "".join(str((int(c) + 1) % 10) if c.isdigit() else "x" for c in real) or "0"
    try:
        target.run("verify_request", subject, wrong)
        out.verification_problems.append(f"request {wrong['request_id']}: the wrong code {wrong['code']} was accepted")
    except UnexpectedStatus as exc:
        out.verification_attempts.append(f"wrong code {wrong['code']} refused ({exc.status})")
    out.verification_attempts.append(f"wrong-code request {wrong['request_id']} left to the target")

    # another subject's session, on the request that was properly verified
    if decoy is not None and decoy.captured.get("token"):
        other = {**first_request, "token": decoy.captured["token"]}
        got = ex.download(target, str(target.render(_export_link(target.profile),
                                                    {"subject": subject.template_context(), "captured": other})),
                          subject=subject, captured=other, auth=(target.profile.data.get("export") or {}).get("auth"),
                          where="export link, from another subject's session")
        for item in leaked(got):
            out.verification_problems.append(f"another subject's session got the subject's {item} "
                                             f"(status {got.status})")
        out.verification_attempts.append(f"another subject's session fetched {got.source}: status {got.status}")
        try:
            target.run("request_access", subject, {**other, "request_id": None})
            out.verification_attempts.append("another subject's session could file an access request for the "
                                             "subject (it still needs the subject's code)")
        except UnexpectedStatus as exc:
            out.verification_attempts.append(f"another subject's session may not file a request ({exc.status})")
    out.wrong_request = wrong
    evidence.stage("verification attempts", attempts=out.verification_attempts)


def _second(run, subject, strong: list[str], out: AccessOutcome, evidence) -> None:
    target = run.target
    try:
        result = target.run("export", subject)
        status = subject.captured.get("access_status")
        try:
            again = ex.obtain(target, subject, result=result)
        except ex.ExportError as exc:
            again = None
            out.second_problem = f"the second access request (status {status}) delivered no export: {exc}"
        if again is not None:
            out.second_made = True
            found = _fields_found(again, subject.needles(strong))
            if not found:
                out.second_problem = (f"the second access request (status {status}) delivered an export without the "
                                      f"subject's data: {again.describe()}")
    except UnexpectedStatus as exc:
        out.second_problem = f"the second access request was refused: {exc}"
    except PrivacyChecksError as exc:
        out.second_error = str(exc)
    evidence.stage("second request within 12 months", problem=out.second_problem, error=out.second_error)

    # the barrier for the wrong-code request: a request filed after it has been answered
    wrong = out.wrong_request
    if wrong is None:
        return
    if out.second_error:
        out.verification_error = f"barrier failed: the later control request could not be made: {out.second_error}"
        return
    try:
        got = ex.download(target, str(target.render(_export_link(target.profile),
                                                    {"subject": subject.template_context(), "captured": wrong})),
                          subject=subject, captured=wrong, auth=(target.profile.data.get("export") or {}).get("auth"),
                          where="export link of the wrongly verified request")
    except PrivacyChecksError as exc:
        out.verification_error = str(exc)
        return
    for fname, where in _fields_found(got, subject.needles(subject.strong_fields())).items():
        out.verification_problems.append(f"the request verified with a wrong code delivered the subject's {fname} "
                                         f"in {where} (status {got.status})")
    out.verification_attempts.append(f"export of the wrong-code request: status {got.status}")
    evidence.stage("verification judged", problems=out.verification_problems)


# -- correction ----------------------------------------------------------------------------------

@dataclass
class CorrectionOutcome:
    error: str | None = None
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (old, new)
    old_seen: dict[str, list[str]] = field(default_factory=dict)  # store -> locations
    new_missing: list[str] = field(default_factory=list)
    old_residual: list[str] = field(default_factory=list)
    old_places: list = field(default_factory=list)  # findings.Place: where the old value is still held
    allowed: list[str] = field(default_factory=list)
    unswept: list[str] = field(default_factory=list)
    recipients_before: dict[str, list[str]] = field(default_factory=dict)  # sink -> fields
    recipients_told: dict[str, str] = field(default_factory=dict)
    recipients_not_told: list[str] = field(default_factory=list)
    completion_failure: str | None = None
    skip: Exception | None = None
    failed_stages: dict[str, str] = field(default_factory=dict)  # "recipients" -> why it failed
    swept: dict[str, int] = field(default_factory=dict)
    sinks_declared: int = 0
    lacks_recipients: str | None = None


_PARAM = re.compile(r"\{\{\s*params\.([A-Za-z_]\w*)\s*\}\}")


def correction_fields(profile) -> list[str]:
    """The fields the `correct` operation changes: the params.<field> its steps use."""
    op = profile.operation("correct") or {}
    return sorted(set(_PARAM.findall(repr(op.get("steps", [])))))


def run_correction(run, *, test_id: str, evidence) -> CorrectionOutcome:
    out = CorrectionOutcome()
    return settle(out, _correction, run, test_id, evidence, out)


def _correction(run, test_id: str, evidence, out: CorrectionOutcome) -> None:
    from ..findings import file_roots, from_hits
    from ..flows.deletion import describe_hit, swept_counts

    target, profile = run.target, run.profile
    names = correction_fields(profile)
    if not target.has_operation("correct") or not names:
        raise NotVerified(f"{profile.name}: the profile declares no 'correct' operation using params.<field>, so "
                          "a correction cannot be requested (or declare not_offered.correct with the reason)")
    out.sinks_declared, out.lacks_recipients = len(profile.sinks), profile.lacks.get("recipients")
    propagation = float(profile.timeouts.get("propagation", 30))
    specs = store_specs(profile)
    capture = run.capture
    subject = run.create_subject(test_id, role="subject")
    if target.has_operation("activity"):
        target.run("activity", subject)
    unknown = [n for n in names if n not in subject.fields]
    if unknown:
        raise TargetError(f"the correct operation uses params {', '.join(unknown)}, which are not subject fields")
    fresh = run.factory.build(test_id, role="correction")
    new_values = {n: fresh.fields[n] for n in names}
    old_needles = subject.needles(names)
    new_needles = [Needle(subject.id, n, v) for n, v in new_values.items()]
    out.fields = {n: (subject.fields[n], new_values[n]) for n in names}

    # -- positive control: the subject is in every store that must hold it, and the old values
    # are where we will later look. A store must show the subject (any of its proof), not the
    # fields to correct: a log holding the email but never the name is caught up as soon as the
    # email is there; waiting for the name there would only wait out the whole window.
    must = {s["name"] for s in profile.stores if s.get("expect_subject", True)}
    looked_for = subject.needles(sorted(set(subject.strong_fields()) | set(names)))
    deadline = time.monotonic() + propagation
    while True:
        res = sweep(specs, looked_for)
        hits = [h for h in res.hits if not h.weak]
        out.old_seen = {}
        for h in hits:
            if h.field in names:
                # as the store names it ("file …/digest.mmdf, line 3", "table users, column email"),
                # not "path.3", which reads like a rotated file's name
                out.old_seen.setdefault(h.store, []).append(f"{h.place().split(': ', 1)[-1]} ({h.field})")
        unseen = sorted(must - {h.store for h in hits})
        if not unseen or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if unseen:
        # As for deletion: a store never seen holding the subject is a blind observer; the old
        # value arriving there after the correction would go unseen.
        why = "; ".join(f"{u.store}: {u.where}: {u.reason}" for u in res.unswept if u.store in unseen)
        raise ControlFailed(f"positive control failed: the subject {subject.canary} was never seen in store(s) "
                            f"{', '.join(unseen)} within {propagation:.0f} s, so the old value's absence there "
                            "after the correction would prove nothing (is the store declared correctly, and does "
                            "create/activity reach it?)" + (f"; the sweep could not read: {why}" if why else ""))
    if not out.old_seen:
        raise ControlFailed(f"positive control failed: the values to correct ({', '.join(names)}) were never seen "
                            "in any store, so their absence afterwards would prove nothing")

    stored = [s for s in profile.sinks if s.get("store")]
    timeout = float(profile.timeouts.get("request", 30))

    def recipients(needles, since=0) -> dict[str, list[str]]:
        got: dict[str, list[str]] = {}
        for h in sink_obs.find_in_captures(capture.captures(since), needles, profile.sinks):
            got.setdefault(h.sink, []).append(h.field)
        # A store-backed sink's whole record (it carries no delivery order): the old values held
        # there were received; a corrected value is new to this run, so holding it means it was
        # passed on after the correction.
        for sink in stored:
            try:
                hits = store_sink_hits(profile, sink, needles, timeout_s=timeout)
            except NothingRecorded:  # a stream or a log may appear only with the first delivery
                hits = []
            for h in hits:
                got.setdefault(h.sink, []).append(h.field)
        return got

    if profile.sinks:
        # Every recipient expected to receive each subject must be seen receiving this one, or its
        # silence after the correction would prove nothing (only the recipients check needs this).
        expected = {s["name"] for s in profile.sinks if s.get("expect_subject", True)}
        strong = subject.needles(subject.strong_fields())
        with stage(out, "recipients"):
            sink_obs.wait_for(lambda: recipients(old_needles) and expected <= set(recipients(strong)) or None,
                              timeout=propagation)
            time.sleep(0.5)  # deliveries still in flight land in recipients_before, not after the correction
            out.recipients_before = {k: sorted(set(v)) for k, v in recipients(old_needles).items()}
            missing = sorted(expected - set(recipients(strong)))
            if missing:
                raise ControlFailed(f"positive control failed: declared recipient(s) {', '.join(missing)} never "
                                    f"received the subject {subject.canary} within {propagation:.0f} s, so whether "
                                    f"they are told of the correction cannot be judged; {run.capture_where()} — is "
                                    "the target configured to deliver there? (a recipient that does not receive "
                                    "every subject is declared with expect_subject: false)")
    evidence.stage("positive control", old_seen=out.old_seen, recipients=out.recipients_before)

    # -- the correction -------------------------------------------------------------------------
    seq_before = capture.last_seq()
    try:
        target.run("correct", subject, params=new_values)
    except PrivacyChecksError as exc:
        out.completion_failure = str(exc)
        return
    status = subject.captured.get("correct_status")
    if status is not None and str(status).lower() not in ("completed", "done", "succeeded"):
        out.completion_failure = f"the correction request ended as {status!r}"
        return
    subject.fields.update(new_values)  # later operations (cleanup, login) use what the target now holds
    evidence.stage("correction requested", fields=names, request_id=subject.captured.get("request_id"))

    # -- the new values must reach every store the old ones were in; then a barrier ---------------
    deadline = time.monotonic() + propagation
    while True:
        new_seen = {h.store for h in sweep(specs, new_needles).hits}
        if set(out.old_seen) <= new_seen or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    out.new_missing = [f"{store}: the new value never arrived (the old one was at {', '.join(out.old_seen[store])})"
                       for store in sorted(set(out.old_seen) - new_seen)]
    barrier = run.create_subject(test_id, role="control")
    if target.has_operation("activity"):
        target.run("activity", barrier)
    # every store that showed the subject, not only those that showed the old value: one that
    # lags could still receive the old value after the final sweep
    blind = _wait_in_stores(specs, must | set(out.old_seen), [barrier], propagation)
    if blind:
        raise ControlFailed(f"barrier failed: a write made after the correction was never seen: {'; '.join(blind)}")

    final = sweep(specs, old_needles)
    out.swept = swept_counts(final)
    out.unswept = [f"{u.store}: {u.where}: {u.reason}" for u in final.unswept]
    bad, allowed = split_allowed([h for h in final.hits if not h.weak], exceptions_from_profile(profile))
    out.old_residual = [describe_hit(h) for h in bad]
    out.old_places = from_hits(bad, file_roots(profile.stores))
    out.allowed = [f"{describe_hit(h)} — allowed: {e.describe()}" for h, e in allowed]
    evidence.stage("sweep after correction", residual=out.old_residual, allowed=out.allowed, unswept=out.unswept,
                   new_missing=out.new_missing, queries=final.shown_queries())

    # -- recipients of the old values must be told the new ones (GDPR Art. 19) -----------------
    def untold() -> set[str]:
        got = recipients(new_needles, seq_before)
        return {s for s, fields in out.recipients_before.items() if not set(fields) & set(got.get(s, []))}

    if "recipients" in out.failed_stages:
        return
    # one shared deadline: recipients are waited for together, not one propagation each
    sink_obs.wait_for(lambda: not untold() or None, timeout=propagation)
    late = untold()
    for sink in sorted(out.recipients_before):
        if sink not in late:
            out.recipients_told[sink] = "received the corrected value"
        else:
            out.recipients_not_told.append(
                f"{sink} received the old {', '.join(out.recipients_before[sink])} but not the corrected value "
                f"within {propagation:.0f} s")
    evidence.stage("recipients told", told=out.recipients_told, not_told=out.recipients_not_told)


# -- module fixtures' body -------------------------------------------------------------------------

def module_procedure(request, run, right: str, runner, **kwargs):
    """Run one procedure for a suite module, yield its outcome, remove what it created.

    Yields None when the profile says the target does not offer `right`; each test then
    reports that through `outcomes.not_offered`.
    """
    if right in run.profile.not_offered:
        yield None
        return
    yield from run.procedure(request, runner, **kwargs)
