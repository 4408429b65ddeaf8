"""Procedures for the policy's own promises (suites/policy/test_promises.py).

- review and change: the subject, in its own session, reads its account profile, changes it,
  and reads it again;
- the policy page: fetched from the target, its "Last modified" date read from the top, and
  its text's sha256 compared with the one the ledger kept from the previous run.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime
from html.parser import HTMLParser
from urllib.parse import urljoin

from ..observe.forms import Needle
from ..observe.stores import sweep
from ..outcomes import CheckError, ControlFailed, NotVerified, settle
from ..runtime import store_specs
from .disclosure import where

# -- review and change -------------------------------------------------------------------------


@dataclass
class EditOutcome:
    read_url: str = ""
    not_shown: list[str] = field(default_factory=list)  # held fields the profile page does not show
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (old, new)
    not_changed: list[str] = field(default_factory=list)
    error: str | None = None
    skip: Exception | None = None


def _params_of(op: dict) -> list[str]:
    text = repr(op)
    return list(dict.fromkeys(re.findall(r"params\.([a-z_][a-z0-9_]*)", text)))


def run_review_and_change(run, *, test_id: str, evidence) -> EditOutcome:
    out = EditOutcome()
    return settle(out, _review_and_change, run, test_id, evidence, out)


def _shown(body) -> str:
    if isinstance(body, dict):
        return " ".join(_shown(v) for v in body.values())
    if isinstance(body, list):
        return " ".join(_shown(v) for v in body)
    return "" if body is None else str(body)


def _review_and_change(run, test_id: str, evidence, out: EditOutcome) -> None:
    target, profile = run.target, run.profile
    missing_ops = [op for op in ("read_profile", "update_profile") if not target.has_operation(op)]
    if missing_ops:
        raise NotVerified(f"the profile declares no {' or '.join(missing_ops)} operation: the subject's own "
                          "session must read (read_profile) and change (update_profile, using params.<field>) "
                          "its account profile for this promise to be checked")
    fields = _params_of(profile.operation("update_profile"))
    if not fields:
        raise CheckError("the update_profile operation uses no params.<field>, so nothing can be changed")
    specs = store_specs(profile)
    propagation = float(profile.timeouts.get("propagation", 30))
    subject = run.create_subject(test_id, role="subject")
    unknown = [f for f in fields if f not in subject.fields]
    if unknown:
        raise CheckError(f"update_profile uses params {', '.join(unknown)}, which are not subject fields")

    # positive control: what the stores hold is what the profile page owes
    must_hold = {s["name"] for s in profile.stores if s.get("expect_subject", True)}
    deadline = time.monotonic() + propagation
    while True:
        hits = [h for h in sweep(specs, subject.needles(subject.strong_fields())).hits
                if h.subject_id == subject.id and not h.weak]
        held, seen = {h.field for h in hits}, {h.store for h in hits}
        if (held and must_hold <= seen) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    if not held or not must_hold <= seen:
        raise ControlFailed(f"positive control failed: subject {subject.canary} never found in store(s) "
                            f"{', '.join(sorted(must_hold - seen)) or 'any'} within {propagation:.0f} s")
    first = target.run("read_profile", subject).last
    out.read_url = first.url
    shown = _shown(first.json)
    out.not_shown = sorted(f for f in held if f != "password" and subject.fields[f] not in shown)
    evidence.stage("profile read", url=first.url, status=first.status, held=sorted(held), not_shown=out.not_shown)

    fresh = run.factory.build(test_id, role="control")
    new = {f: fresh.fields[f] for f in fields}
    old = {f: subject.fields[f] for f in fields}
    target.run("update_profile", subject, params=new)
    subject.fields.update(new)  # what the target should now hold, for later operations and cleanup
    out.changed = {f: (old[f], new[f]) for f in fields}
    again = _shown(target.run("read_profile", subject).last.json)
    for f in fields:
        if new[f] not in again or old[f] in again:
            state = "still shows the old value" if old[f] in again else "does not show the new value"
            out.not_changed.append(f"{f}: {state} (old «{old[f]}», new «{new[f]}»)")
    if out.not_changed:
        probe = [Needle(subject.id, f + " (old)", old[f], False) for f in fields]
        hits = sweep(specs, probe).hits
        for line_field in fields:
            olds = sorted({where(h) for h in hits if h.field == line_field + " (old)"})
            if olds:
                out.not_changed.append(f"{line_field}: the old value is still stored at {'; '.join(olds)}")
    evidence.stage("profile changed", fields=fields, not_changed=out.not_changed)


# -- the policy page ---------------------------------------------------------------------------

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december")
_DATE = rf"(\d{{4}}-\d{{2}}-\d{{2}}|(?:{_MONTHS})\s+\d{{1,2}},?\s+\d{{4}}|\d{{1,2}}\s+(?:{_MONTHS})\s+\d{{4}}|(?:{_MONTHS})\s+\d{{4}})"
_LABEL = re.compile(rf"(last\s+(?:modified|updated|revised|reviewed)(?:\s+on)?|effective(?:\s+date)?)\s*:?\s*{_DATE}",
                    re.IGNORECASE)
# "at the top of the page": within the first characters of its visible text
TOP_CHARS = 600


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "title", "head", "template"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "title", "head", "template") and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def visible_text(page: str) -> str:
    parser = _Text()
    parser.feed(page)
    parser.close()
    return re.sub(r"\s+", " ", " ".join(parser.parts)).strip()


def parse_date(text: str) -> date | None:
    """A stated date; a month alone ("December 2019") means its last day, the reading most in its favour."""
    text = re.sub(r"\s+", " ", text.strip().replace(",", ""))
    for fmt in ("%Y-%m-%d", "%B %d %Y", "%d %B %Y"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    try:
        first = datetime.strptime(text, "%B %Y").date()
    except ValueError:
        return None
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


@dataclass
class PageOutcome:
    url: str = ""
    key: str = ""
    status: int | None = None
    date_text: str | None = None
    date: date | None = None
    date_position: int | None = None
    sha256: str = ""
    previous: dict | None = None
    excerpt: str = ""
    error: str | None = None
    skip: Exception | None = None


def run_policy_page(run, policy, *, evidence) -> PageOutcome:
    out = PageOutcome()
    return settle(out, _policy_page, run, policy, evidence, out)


def _policy_page(run, policy, evidence, out: PageOutcome) -> None:
    if not policy.served_at:
        raise CheckError(f"the policy file {policy.path} names no served_at (where the target serves the policy)")
    target = run.target
    out.key = policy.served_at
    out.url = urljoin(target.base_url, policy.served_at)
    result = target.request("GET", out.url, where="policy page")
    out.status = result.status
    if result.status != 200:
        raise CheckError(f"GET {out.url} answered {result.status}: the policy page could not be read")
    text = visible_text(result.text)
    out.excerpt = text[:200]
    out.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    found = _LABEL.search(text)
    if found:
        out.date_text, out.date_position = found.group(0), found.start()
        out.date = parse_date(found.group(2))
    ledger = run.ledger
    # the key is the path, not the URL: a target's port may change between runs, its page does not
    out.previous = ledger.last_policy_hash(run.history_name, out.key)
    ledger.record_policy_hash(run.history_name, out.key, out.sha256, out.date.isoformat() if out.date else None)
    evidence.stage("policy page", url=out.url, sha256=out.sha256, date=out.date_text, position=out.date_position,
                   previous=out.previous)
