"""What the target really stores about a subject, by CCPA category (suites/policy).

Procedure:
1. a subject is created through the target's interface (every field of the profile, the seeded
   precise location included) and acts once;
2. positive control: the sweep finds the subject in every store that must hold subjects;
3. barrier: a control subject created and acting afterwards is found there too, so writes the
   subject caused asynchronously have landed before anything is concluded;
4. the subject's values are swept once more and each hit is classified from the field that
   was found (privacy_checks/data/field_categories.yaml; a sensitive field is also category
   L). Column names are read as well, but only as hints, reported apart: a column called
   `geolocation` proves nothing until a value is found in it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from ..errors import PrivacyChecksError
from ..observe.forms import TOKEN_FIELD, Needle
from ..observe.stores import Hit, sweep
from ..outcomes import ControlFailed, settle
from ..policy import field_categories
from ..runtime import store_specs
from ..subjects import CONTENT_STRATEGY

# Column-name hints, by category: shown beside the evidence, never a verdict.
_HINTS = {
    "G": r"(^|_)(lat|lng|lon|latitude|longitude|geo|geolocation|gps|coords?|location)(_|$)",
    "C": r"(^|_)(race|ethnicity|religion|gender|sex|birth_?date|dob|age|citizenship|marital|disability|veteran)(_|$)",
    "D": r"(^|_)(purchase|purchases|order|orders|invoice|transaction)(_|$)",
    "E": r"(^|_)(biometric|fingerprint|faceprint|voiceprint|iris|retina)(_|$)",
    "H": r"(^|_)(audio|voice|photo|video|recording)(_|$)",
    "I": r"(^|_)(salary|job_title|employer|employment|performance)(_|$)",
    "J": r"(^|_)(grade|grades|transcript|student_id)(_|$)",
    "K": r"(^|_)(inference|inferred|segment|propensity|persona|affinity)(_|$)",
    "L": r"(^|_)(ssn|social_security|passport|driver_?licen[cs]e|password|password_hash|union|health|medical)(_|$)",
}


@dataclass
class Held:
    category: str
    field: str
    where: str  # "app: table users, column geolocation"
    form: str


@dataclass
class DisclosureOutcome:
    subject: str = ""
    held: list[Held] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)  # weak-field hits: shown, never proof
    content: list[str] = field(default_factory=list)  # hits of text the subject wrote: shown, not classified
    fields_held: dict[str, list[str]] = field(default_factory=dict)  # field -> where
    hints: list[str] = field(default_factory=list)
    unswept: list[str] = field(default_factory=list)
    seeded_location: bool = False
    error: str | None = None
    skip: Exception | None = None

    def categories(self) -> dict[str, list[Held]]:
        out: dict[str, list[Held]] = {}
        for h in self.held:
            out.setdefault(h.category, []).append(h)
        return out


def where(hit: Hit) -> str:
    if hit.location_kind == "table":
        return f"{hit.store}: table {hit.table_or_path}, column {hit.column_or_line}"
    return hit.place()


def needles_for(subject) -> list[Needle]:
    """The subject's values; a seeded location is also looked for one coordinate at a time."""
    needles = subject.needles()
    if subject.strategies.get("geolocation") == "geolocation" and subject.fields.get("geolocation"):
        for part in subject.fields["geolocation"].split(","):
            needles.append(Needle(subject.id, "geolocation", part.strip(), False))
    return needles


def run_disclosure(run, *, test_id: str, evidence) -> DisclosureOutcome:
    out = DisclosureOutcome()
    return settle(out, _run, run, test_id, evidence, out)


def _run(run, test_id: str, evidence, out: DisclosureOutcome) -> None:
    target, profile = run.target, run.profile
    specs = store_specs(profile)
    must_hold = {s["name"] for s in profile.stores if s.get("expect_subject", True)}
    if not must_hold:
        raise ControlFailed("the profile declares no store expected to hold subjects (expect_subject), so "
                            "nothing could show what the target keeps")
    propagation = float(profile.timeouts.get("propagation", 30))

    subject = run.create_subject(test_id, role="subject")
    out.subject = subject.canary
    out.seeded_location = subject.strategies.get("geolocation") == "geolocation"
    if target.has_operation("activity"):
        target.run("activity", subject)
    control = run.create_subject(test_id, role="control")
    if target.has_operation("activity"):
        target.run("activity", control)
    evidence.stage("subjects created", subject=subject.canary, control=control.canary,
                   fields=sorted(subject.fields), seeded_location=out.seeded_location)

    mine, ctrl = needles_for(subject), control.needles(control.strong_fields())
    deadline = time.monotonic() + propagation
    while True:
        result = sweep(specs, mine + ctrl)
        seen = {s.role: {h.store for h in result.hits if h.subject_id == s.id and not h.weak}
                for s in (subject, control)}
        missing = {role: sorted(must_hold - stores) for role, stores in seen.items() if must_hold - stores}
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if "subject" in missing:
        raise ControlFailed(f"positive control failed: subject {subject.canary} never seen in store(s) "
                            f"{', '.join(missing['subject'])} within {propagation:.0f} s, so what the target "
                            "keeps about it cannot be told")
    if "control" in missing:
        raise ControlFailed(f"barrier failed: the control subject, created after the subject, never reached "
                            f"store(s) {', '.join(missing['control'])} within {propagation:.0f} s")

    final = sweep(specs, mine)
    out.unswept = [f"{u.store}: {u.where}: {u.reason}" for u in final.unswept]
    for hit in final.hits:
        if hit.subject_id != subject.id:
            continue
        loc = where(hit)
        if hit.weak:
            out.weak.append(f"{hit.field} ({hit.form}) at {loc}")
            continue
        if hit.field == TOKEN_FIELD:
            # the bare canary (a word index, a tsvector): proof the subject is there, but of no
            # field in particular, so nothing to classify; the field's own hits are classified
            out.weak.append(f"canary alone ({hit.form}) at {loc}")
            continue
        if subject.strategies.get(hit.field) == CONTENT_STRATEGY:
            # text the subject wrote: its category is whatever a person writes, and no field list
            # names a person's messages, so it is shown, never classified (docs/profile.md)
            out.content.append(f"{hit.field} ({hit.form}) at {loc}")
            continue
        out.fields_held.setdefault(hit.field, [])
        if loc not in out.fields_held[hit.field]:
            out.fields_held[hit.field].append(loc)
        for cat in field_categories(hit.field):
            out.held.append(Held(cat, hit.field, loc, hit.form))
    out.hints = column_hints(profile)
    evidence.stage("held", categories={c: sorted({f"{h.field} at {h.where}" for h in hs})
                                       for c, hs in sorted(out.categories().items())},
                   fields=out.fields_held, weak=out.weak, content=out.content, unswept=out.unswept)
    evidence.stage("column-name hints (not proof)", hints=out.hints)


def column_hints(profile) -> list[str]:
    """Columns whose names suggest a category; a hint for a reviewer, never a finding."""
    from ..observe.stores.sql import _engine  # the sweep's read-only, time-bounded connection

    hints = []
    for spec in store_specs(profile):
        if not spec.url:
            continue
        try:
            engine, _ = _engine(spec, 10)
        except PrivacyChecksError as exc:
            hints.append(f"{spec.name}: column names not read: {exc}")
            continue
        try:
            insp = sa.inspect(engine)
            for table in insp.get_table_names():
                for col in insp.get_columns(table):
                    for cat, pattern in _HINTS.items():
                        if re.search(pattern, col["name"].lower()):
                            hints.append(f"{spec.name}: table {table}, column {col['name']} (category {cat}?)")
        except sa.exc.SQLAlchemyError as exc:
            hints.append(f"{spec.name}: column names not read: {type(exc).__name__}")
        finally:
            engine.dispose()
    return hints
