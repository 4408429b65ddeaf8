"""Census: where one subject's data lands on a target — the first thing to run on a new one.

`privacy-checks census` creates one subject (and a decoy when the profile declares
`interact`), runs `create_subject`, `login`, `activity` and `interact` as the suites do, waits
until the stores that must hold subjects show it (as the deletion procedure's positive control
does), sweeps every store, collects what the recipients got, prints where the subject's data
landed, and removes the subjects again. What it lists is what the deletion check will demand
be gone, so it is also where retention exceptions are written from: `--suggest-exceptions`
prints a stub for every place, with the legal basis and reason left for a person to fill in.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import PrivacyChecksError
from .places import place_of


@dataclass
class Found:
    store: str
    place: str  # "table users", "file app.log", "keys user:*"
    kind: str  # table | file | row | key | object
    location: str  # the table, file, key or object
    column: str  # the column, line, or member
    field: str
    form: str
    weak: bool


@dataclass
class Received:
    recipient: str
    role: str
    request: str  # "POST /crm/contacts" or "mailto:crm@example.com"
    fields: list[str]
    forms: list[str]


@dataclass
class Census:
    target: str
    subject: str = ""
    decoy: str | None = None
    operations: list[str] = field(default_factory=list)
    found: list[Found] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    not_seen: list[str] = field(default_factory=list)  # stores expected to hold subjects, never seen in
    unswept: list[str] = field(default_factory=list)
    removal_problems: list[str] = field(default_factory=list)

    def places(self) -> dict[str, list[str]]:
        """Store -> "table.column" for every strong hit (the deletion procedure's own terms)."""
        out: dict[str, set[str]] = {}
        for f in self.found:
            if not f.weak:
                out.setdefault(f.store, set()).add(f"{f.location}.{f.column}")
        return {k: sorted(v) for k, v in sorted(out.items())}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def take(run, *, test_id: str = "privacy-checks census") -> Census:
    """Run the census on `run`'s target; the subjects it creates are removed before it returns."""
    from .observe import sinks as sink_obs
    from .observe.stores import sweep
    from .runtime import store_specs

    target, profile = run.target, run.profile
    out = Census(target=profile.name)
    propagation = float(profile.timeouts.get("propagation", 30))
    specs = store_specs(profile)
    must_hold = {s["name"] for s in profile.stores if s.get("expect_subject", True)}
    start = len(run.created)
    try:
        subject = run.create_subject(test_id, role="subject")
        out.subject = subject.canary
        out.operations.append("create_subject")
        decoy = run.create_subject(test_id, role="decoy") if target.has_operation("interact") else None
        out.decoy = decoy.canary if decoy else None
        for name in ("login", "activity"):
            if target.has_operation(name):
                target.run(name, subject)
                out.operations.append(name)
        if decoy is not None:
            if target.has_operation("activity"):
                target.run("activity", decoy)
            target.run("interact", subject, others={"decoy": decoy, "control": decoy})
            out.operations.append(f"interact (with decoy {decoy.canary})")

        # as the positive control does: wait until the stores that must hold subjects show it
        needles = subject.needles()
        deadline = time.monotonic() + propagation
        while True:
            result = sweep(specs, needles)
            seen = {h.store for h in result.hits if not h.weak}
            if must_hold <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        out.not_seen = sorted(must_hold - seen)
        out.unswept = [f"{u.store}: {u.where}: {u.reason}" for u in result.unswept]
        for h in sorted(result.hits, key=lambda h: (h.store, str(h.table_or_path), str(h.column_or_line), h.field)):
            row = Found(h.store, place_of(h).split(": ", 1)[1], h.location_kind, str(h.table_or_path),
                        _member(h.location_kind, str(h.column_or_line)), h.field, h.form, h.weak)
            if row not in out.found:
                out.found.append(row)

        strong = subject.needles(subject.strong_fields())

        def delivered():
            return sink_obs.find_in_captures(run.capture.captures(0), strong, profile.sinks)

        # recipients are fed asynchronously: wait for the first delivery, then a moment more
        hits = sink_obs.wait_for(delivered, timeout=propagation if profile.sinks else 1.0)
        time.sleep(min(1.0, propagation))
        hits = delivered() or hits or []
        grouped: dict[tuple[str, str, str], tuple[set[str], set[str]]] = {}
        for hit in hits:
            request = hit.capture.path if hit.capture.path.startswith("mailto:") else \
                f"{hit.capture.method} {hit.capture.path}"
            fields, forms = grouped.setdefault((hit.sink, hit.role, request), (set(), set()))
            fields.add(hit.field)
            forms.add(hit.form)
        out.received = [Received(s, r, q, sorted(f), sorted(m)) for (s, r, q), (f, m) in sorted(grouped.items())]
    finally:
        out.removal_problems = run.remove_created_since(start)
    return out


def _member(kind: str, column: str) -> str:
    """Where in a key a value sits, as a pattern when each record adds one (a stream entry, a
    list item): the census shows the place once, as it shows keys sharing a prefix once."""
    if kind != "key":
        return column
    return re.sub(r"^index \d+$", "index *", re.sub(r"^entry \S+ ", "entry * ", column))


def table(census: Census) -> str:
    """The census as a plain-text table, for people."""
    lines = [f"census of {census.target}: subject {census.subject}"
             + (f", decoy {census.decoy}" if census.decoy else ""),
             f"operations run: {', '.join(census.operations)}", ""]
    rows = [("STORE", "PLACE", "COLUMN / LINE", "FIELD", "FORM")]
    rows += [(f.store, f.place, f.column, f.field + (" (weak)" if f.weak else ""), f.form) for f in census.found]
    lines += _columns(rows) if census.found else ["the subject's data was found in no store"]
    lines.append("")
    rows = [("RECIPIENT", "ROLE", "REQUEST", "FIELDS", "FORMS")]
    rows += [(r.recipient, r.role, r.request, ", ".join(r.fields), ", ".join(r.forms)) for r in census.received]
    lines += _columns(rows) if census.received else ["no recipient received the subject's data"]
    for title, items in (("stores expected to hold subjects where it was never seen", census.not_seen),
                         ("could not be swept", census.unswept),
                         ("could not remove (kept in the ledger for `privacy-checks cleanup`)",
                          census.removal_problems)):
        if items:
            lines += ["", f"{title}:"] + [f"  {i}" for i in items]
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def suggest_exceptions(census: Census) -> str:
    """YAML stubs of retention exceptions, one per place the census found (strong values only).

    The legal basis and the reason are left empty on purpose: only the business knows why it
    keeps something, and lint rejects an empty one, so no stub can be used unread."""
    key = {"table": "table", "file": "file", "row": "file", "key": "key", "object": "key"}
    places: dict[tuple[str, str, str], dict[str, set[str]]] = {}
    for f in census.found:
        if f.weak:
            continue
        where = f.location
        if f.kind == "key" and ":" in where:
            where = where.split(":")[0] + ":*"
        elif f.kind == "object" and "/" in where:
            where = where.rsplit("/", 1)[0] + "/*"
        columns = places.setdefault((f.store, key[f.kind], where), {})
        columns.setdefault(f.column if f.kind in ("table", "row") else "", set()).add(f"{f.field} ({f.form})")
    out = ["# Retention exceptions: keep ONLY the places the business may lawfully keep after a",
           "# deletion, fill in legal_basis and reason, narrow each to a column, field and form, and",
           "# delete the rest. Empty legal_basis and reason are lint errors on purpose.",
           "retention_exceptions:"]
    for (store, kind, where), columns in sorted(places.items()):
        for column, fields in sorted(columns.items()):
            out.append(f"  # {store}: {kind} {where}" + (f", column {column}" if column else "")
                       + f": {', '.join(sorted(fields))}")
            out.append(f"  - store: {_scalar(store)}")
            out.append(f"    {kind}: {_scalar(where)}")
            if column:
                out.append(f"    column: {_scalar(column)}")
            out.append('    legal_basis: ""   # the law that requires or allows keeping it')
            out.append('    reason: ""        # why the business keeps it')
    return "\n".join(out)


def _scalar(value: Any) -> str:
    return json.dumps(str(value))


def main(args) -> int:
    """`privacy-checks census`: exit 0 after a census, 1 when a subject could not be removed."""
    import os
    import sys

    from .runtime import RunContext

    run = RunContext(target_path=args.target, flaws=list(args.demo_flaw or []), ledger_url=args.ledger,
                     seed=args.seed, lease_seconds=600.0)
    try:
        census = take(run)
    except PrivacyChecksError as exc:
        print(f"privacy-checks census: {exc}", file=sys.stderr)
        return 2
    finally:
        run.close()
    if args.suggest_exceptions:
        print(suggest_exceptions(census))
    elif args.json:
        print(census.to_json())
    else:
        print(table(census))
    if census.removal_problems:
        print("privacy-checks census: some subjects could not be removed; run `privacy-checks cleanup` "
              f"--target {args.target or os.environ.get('PRIVACY_CHECKS_TARGET') or '(demo)'}", file=sys.stderr)
        return 1
    return 0


__all__ = ["Census", "Found", "Received", "main", "suggest_exceptions", "table", "take"]
