"""The subject reaches the target's records: read back through the API, found in the stores."""

from __future__ import annotations

import time

from ..observe.stores import sweep
from ..outcomes import ControlFailed, PromiseBroken, examined
from ..runtime import store_specs
from ..subjects import CONTENT_STRATEGY, category_table

# Not account fields: text the subject wrote (a ticket, a message) and instants of what it did
# (a login time) are its activity, read back elsewhere if at all.
_ACTIVITY_STRATEGIES = {CONTENT_STRATEGY, "timestamp"}


def check_subject_reaches_stores(run, subject, evidence) -> None:
    target, profile = run.target, run.profile
    if target.has_operation("activity"):
        target.run("activity", subject)
    must_hold = {s["name"] for s in profile.stores if s.get("expect_subject", True)}
    if not must_hold:
        raise ControlFailed("the profile declares no store expected to hold subjects (expect_subject)")
    deadline = time.monotonic() + float(profile.timeouts.get("propagation", 30))
    while True:
        result = sweep(store_specs(profile), subject.needles(subject.strong_fields()))
        found = {h.store for h in result.hits}
        if must_hold <= found or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    evidence.stage("sweep", found={s: sorted({f"{h.table_or_path}.{h.column_or_line}" for h in result.hits
                                              if h.store == s}) for s in found},
                   unswept=[f"{u.store}: {u.where}: {u.reason}" for u in result.unswept])
    missing_stores = sorted(must_hold - found)
    if missing_stores:
        raise ControlFailed(f"subject {subject.canary} was created but never found in store(s) "
                            f"{', '.join(missing_stores)}: the store declarations do not match where the target "
                            "keeps data, so absence checks against them would prove nothing")
    examined("declared stores seen holding the subject", must_hold & found)
    if target.has_operation("read_subject"):
        # Only what the stores hold can be read back: a field the target lawfully discards
        # (e.g. a location the policy says it does not collect) is not owed.
        # Text the subject wrote (a `content` field: a ticket, a message) and the instants of what
        # it did are not part of the account; a field never disclosed (a card number, 11 CCR
        # §7024(d)) is not owed by a read-back either.
        held = {h.field for h in result.hits
                if h.subject_id == subject.id and subject.strategies.get(h.field) not in _ACTIVITY_STRATEGIES
                and not category_table().get(h.field, {}).get("never_disclose", False)}
        res = target.run("read_subject", subject)
        body = res.last.json if isinstance(res.last.json, dict) else {}
        shown = " ".join(str(v) for v in body.values())
        missing = [f for f in subject.strong_fields()
                   if f != "password" and f in held and subject.fields[f] not in shown]
        evidence.stage("read back", status=res.last.status, missing=missing)
        if res.last.status != 200 or missing:
            raise PromiseBroken(f"reading subject {subject.canary} back gave status {res.last.status}; "
                                f"fields not returned: {', '.join(missing) or 'none'}")
        examined("fields read back", [f for f in subject.strong_fields() if f != "password" and f in held])
