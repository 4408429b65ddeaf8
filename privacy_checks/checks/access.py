"""Judgements over one access procedure (flows/access.py), one promise each."""

from __future__ import annotations

from ..flows.access import AccessOutcome
from ..observe.exports import Export
from ..outcomes import CheckError, ControlFailed, NotVerified, PromiseBroken, examined
from .common import usable as _usable

UNDISTINGUISHED = ("places judged by field only, not on their own: every value they hold is held elsewhere too "
                   "(named in the evidence, stage 'export judged by place')")


def _source(outcome: AccessOutcome) -> str:
    return outcome.export.describe() if outcome.export is not None else "the export"


def specific_pieces_complete(outcome: AccessOutcome) -> None:
    _usable(outcome)
    problems = []
    if outcome.places_missing:
        problems.append(f"the export leaves out the subject's data held in {len(outcome.places_missing)} place(s): "
                        + "; ".join(outcome.places_missing))
    if outcome.missing:
        problems.append(f"the export leaves out {len(outcome.missing)} of the {len(outcome.expected)} fields the "
                        f"target holds for the subject: {', '.join(outcome.missing)}")
    if problems:
        if outcome.places_undistinguished:
            # said beside the failure too: these places were judged by field only
            problems.append("not judged on their own, since every value they hold is held elsewhere too: "
                            + "; ".join(outcome.places_undistinguished))
        raise PromiseBroken("\n".join(problems) + f" (export: {_source(outcome)})")
    if not outcome.expected:
        # what the export owes is what the stores were seen holding: with nothing seen, an
        # export holding nothing would look complete too
        raise ControlFailed("positive control failed: no store was seen holding any of the subject's values before "
                            "the request (declare the stores the target keeps it in, with expect_subject: true), so "
                            "what the export owes is unknown and its completeness cannot be judged "
                            f"(export: {_source(outcome)})")
    examined("fields the target holds for the subject, looked for in the export", outcome.expected)
    examined("places the subject was seen in, each shown in the export by a value only it holds", outcome.places)
    # A pass must not read as if every place was shown to be in the export: a place holding only
    # values other places hold too is covered by the field check alone, and the count says so
    # (the evidence's stage "export judged by place" names each).
    examined(UNDISTINGUISHED, outcome.places_undistinguished)
    examined("export parts read", outcome.parts_read)


def nothing_forbidden_disclosed(outcome: AccessOutcome) -> None:
    _usable(outcome)
    if outcome.forbidden:
        raise PromiseBroken("the export discloses what 11 CCR §7024(d) forbids disclosing (it may only say that it "
                            "is held):\n  " + "\n  ".join(outcome.forbidden) + f"\n(export: {_source(outcome)})")
    if outcome.blind:
        raise ControlFailed(outcome.blind)
    if not outcome.secret_fields:
        raise NotVerified("the subjects carry no field that may never be disclosed (password, drivers_license; "
                          "privacy_checks/data/field_categories.yaml), so nothing could be looked for by value; add "
                          "one to the profile's subject.fields")
    examined("fields never to be disclosed, looked for by value", outcome.secret_fields)
    examined("salted hashes checked against the password", outcome.hashes_verified)
    examined("export parts read", outcome.parts_read)


def no_other_subject(outcome: AccessOutcome) -> None:
    _usable(outcome)
    problems = []
    if outcome.others_messages:
        problems.append("the export discloses another person's messages:\n  " + "\n  ".join(outcome.others_messages))
    if outcome.decoy_found:
        problems.append("the subject's export holds another person's data:\n  " + "\n  ".join(outcome.decoy_found))
    if problems:
        raise PromiseBroken("\n".join(problems) + f"\n(export: {_source(outcome)})")
    if outcome.decoy_error or outcome.blind:
        raise ControlFailed(outcome.decoy_error or outcome.blind)
    examined("the decoy's contributions to a shared space, looked for in the export", outcome.shared_looked_for)
    examined("export parts read", outcome.parts_read)


def machine_readable(outcome: AccessOutcome) -> None:
    _usable(outcome)
    problems, errors = [], []
    for name, rend in outcome.renditions.items():
        if not isinstance(rend, Export):
            errors.append(f"rendition {name}: {rend}")
            continue
        if not rend.machine_readable:
            problems.append(f"rendition {name} at {rend.source} is not structured, machine-readable data "
                            f"({rend.content_type or 'no content type'}; found {', '.join(rend.formats) or 'nothing'}): "
                            + "; ".join(rend.format_problems()))
            continue
        for err in outcome.schema_errors.get(name, []):
            problems.append(f"rendition {name} at {rend.source} does not match the export schema: {err}")
        if outcome.unstructured.get(name):
            problems.append(f"rendition {name} at {rend.source} holds the subject's "
                            f"{', '.join(outcome.unstructured[name])} only outside its structured data")
    if problems:
        raise PromiseBroken("the export is not in a structured, commonly used, machine-readable format:\n  "
                            + "\n  ".join(problems))
    if errors:
        raise CheckError("some renditions of the export could not be obtained:\n  " + "\n  ".join(errors))
    examined("renditions parsed", [r for r in outcome.renditions.values() if isinstance(r, Export)])


def categories_disclosed(outcome: AccessOutcome) -> None:
    _usable(outcome)
    if outcome.categories_lacking:
        held = ", ".join(sorted(outcome.categories_expected)) or "none found"
        raise PromiseBroken(f"the profile states the export lists no categories of personal information "
                            f"(lacks.export_categories: {outcome.categories_lacking}), yet Cal. Civ. Code "
                            f"§1798.110(a)(1), (c)(1) require them in the response; the subject is held under "
                            f"categories {held}")
    if outcome.categories_unstated:
        raise NotVerified(outcome.categories_unstated)
    if outcome.categories_error:
        raise CheckError(outcome.categories_error)
    listed = set(outcome.categories_listed)
    missing = {c: f for c, f in outcome.categories_expected.items() if c not in listed}
    if missing:
        lines = [f"category {c} (held as {', '.join(sorted(set(f)))})" for c, f in sorted(missing.items())]
        raise PromiseBroken(f"the export lists categories {sorted(listed)} but the target holds the subject's data in "
                            f"further categories (Cal. Civ. Code §1798.140(v)(1)):\n  " + "\n  ".join(lines))
    examined("categories the subject is held under", outcome.categories_expected)
    examined("categories the export lists", outcome.categories_listed)


def verified_requester_only(outcome: AccessOutcome) -> None:
    _usable(outcome)
    if outcome.verification_lacking:
        raise PromiseBroken(f"the profile states the target does not verify who asks for a person's data "
                            f"(lacks.verification: {outcome.verification_lacking}); 11 CCR §7060(a) requires a "
                            "reasonable method to verify a request to know, and §7024(a) forbids disclosing specific pieces "
                            "unverified")
    if outcome.verification_unstated:
        raise NotVerified(outcome.verification_unstated)
    if outcome.verification_problems:
        raise PromiseBroken("a request that was not properly verified got the subject's data:\n  "
                            + "\n  ".join(outcome.verification_problems))
    if outcome.verification_error:
        raise CheckError(outcome.verification_error)
    if outcome.blind:
        raise ControlFailed(outcome.blind)
    examined("unverified attempts made", outcome.verification_attempts)


def second_request_honoured(outcome: AccessOutcome) -> None:
    _usable(outcome)
    if outcome.blind:
        raise ControlFailed(outcome.blind)
    if outcome.second_problem:
        raise PromiseBroken(outcome.second_problem + " (a business must answer up to two access requests in 12 months)")
    if outcome.second_error:
        raise CheckError(outcome.second_error)
    examined("second access requests answered", 1 if outcome.second_made else 0)
