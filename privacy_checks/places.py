"""Places: where in a store a subject's data lands (a table, a file, a key or object prefix).

A field can be everywhere (the email is in the account, the tickets and the analytics events);
a place is shown to be in an export only by a value that place alone holds for the subject.
The census, the right-to-know check and `privacy-checks census` group sweep hits this way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .observe.forms import TOKEN_FIELD


def place_of(hit) -> str:
    """The place a hit is in: a table, a file, the prefix of a key or of an object's name."""
    kind, where = hit.location_kind, str(hit.table_or_path)
    if kind == "table":
        return f"{hit.store}: table {where}"
    if kind == "key":
        # keys name one record (user:42:profile); the place is what they share
        return f"{hit.store}: keys {where.split(':')[0]}:*" if ":" in where else f"{hit.store}: key {where}"
    if kind == "object":
        return f"{hit.store}: objects {where.rsplit('/', 1)[0]}/*" if "/" in where else f"{hit.store}: object {where}"
    return f"{hit.store}: file {where}"


@dataclass
class Places:
    """Strong fields of one subject seen per place."""

    fields: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, hits: Iterable, subject_id: str) -> Places:
        out = cls()
        for h in hits:
            # A bare canary (form token: a word index, a tsvector) names no field: it cannot show
            # which of the subject's values a place holds, so it does not make a place here.
            if h.subject_id == subject_id and not h.weak and h.field != TOKEN_FIELD:
                out.fields.setdefault(place_of(h), set()).add(h.field)
        return out

    def own_values(self, exclude: Iterable[str] = ()) -> dict[str, list[str]]:
        """Place -> the fields no other place holds (empty: the place cannot be told apart)."""
        skip = set(exclude)
        out = {}
        for place, fields in self.fields.items():
            elsewhere = set().union(*(f for p, f in self.fields.items() if p != place))
            out[place] = sorted(fields - elsewhere - skip)
        return out


__all__ = ["Places", "place_of"]
