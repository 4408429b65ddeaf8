"""Safety rail: the framework only deletes or changes subjects its ledger says it created.

A subject object in memory proves nothing — a test could build one by hand, a captured id
could have been overwritten, a record could already have been cleaned and its id reused by
a real person. Before any operation that deletes or changes a subject on the target, the
caller asks the ledger (the one store that outlives runs) and gets `NotOwned` unless:

- the ledger holds a row with the subject's id, for this target, with the same canary;
- the row is in a state where the subject exists on the target because we put it there
  (not merely intended, not already cleaned);
- every target id the ledger captured for it (user_id, ...) is the one the subject carries.
"""

from __future__ import annotations

from .errors import PrivacyChecksError

# States in which the subject exists on the target because this framework created it.
OWNED_STATES = frozenset({"created", "deleted", "awaiting_request", "orphaned"})


class NotOwned(PrivacyChecksError):
    """Refused: the subject is not (or no longer) one the ledger says we created."""


def ensure_owned(ledger, subject, *, target: str | None = None) -> dict:
    """Return the subject's ledger row, or raise NotOwned saying why it may not be touched."""
    label = f"subject {getattr(subject, 'canary', '?')} (id {getattr(subject, 'id', '?')})"
    row = ledger.subject(subject.id) if getattr(subject, "id", None) else None
    if row is None:
        raise NotOwned(f"refused to delete or change {label}: it is not in the ledger, so this framework did "
                       "not create it")
    if row["canary"] != subject.canary:
        raise NotOwned(f"refused to delete or change {label}: the ledger records canary {row['canary']} for this "
                       "id, not this subject's")
    if target is not None and row["target"] != target:
        raise NotOwned(f"refused to delete or change {label}: the ledger records it on target {row['target']!r}, "
                       f"not {target!r}")
    if row["state"] not in OWNED_STATES:
        why = ("its creation was never confirmed, so no record on the target is known to be ours"
               if row["state"] == "intended" else "it was already removed; its id may belong to someone else now")
        raise NotOwned(f"refused to delete or change {label}: ledger state {row['state']!r} ({why})")
    for key, recorded in (row.get("captured") or {}).items():
        carried = (subject.captured or {}).get(key)
        if carried is not None and str(carried) != str(recorded):
            raise NotOwned(f"refused to delete or change {label}: it carries {key}={carried!r} but the ledger "
                           f"recorded {key}={recorded!r} when it was created")
    return row
