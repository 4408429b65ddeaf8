"""What this run examined, run-wide: every store swept (with the tables, files, keys' databases
or objects it read), and every recipient whose deliveries the run read.

A check's own ``outcomes.examined`` counts say what that check rests on; an auditor also needs
the run's scope as a list ("was the payments database in it?"). The sweep and the capture
readers note what they read here; the compliance report's run box shows the counts and the
JSON report the whole list. Kept per process: under pytest-xdist each worker sends its record
to the controller when it finishes (report/pytest_hooks.py), which merges them.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
# store name -> {"kind": str, "units": {unit: highest count of one sweep}, "locations": set,
#                "unswept": set}
_STORES: dict[str, dict] = {}
# recipient name -> {"role": str, "deliveries": set of capture sequence numbers}
_RECIPIENTS: dict[str, dict] = {}
# a browser's view (suites/web): party name -> {"role": str, "domain": str, "requests": int}
_BROWSER: dict[str, dict] = {}


def reset() -> None:
    with _LOCK:
        _STORES.clear()
        _RECIPIENTS.clear()
        _BROWSER.clear()


def note_sweep(stores, result) -> None:
    """One sweep's stores (StoreSpec) and result (SweepResult): what each store's sweep read."""
    from .observe.stores import kind_of

    with _LOCK:
        for store in stores:
            entry = _STORES.setdefault(store.name, {"kind": kind_of(store), "units": {}, "locations": set(),
                                                    "unswept": set()})
            for unit, n in result.examined.get(store.name, {}).items():
                # each sweep reads the whole store again: its size is the largest sweep's count
                entry["units"][unit] = max(n, entry["units"].get(unit, 0))
        for timing in result.timings:
            if timing.where is not None and timing.store in _STORES:
                _STORES[timing.store]["locations"].add(str(timing.where))
        for unswept in result.unswept:
            if unswept.store in _STORES:
                _STORES[unswept.store]["unswept"].add(f"{unswept.where}: {unswept.reason}")


def note_deliveries(captures, sinks: list[dict]) -> None:
    """The run read these captured deliveries: every declared recipient was watched, and each
    delivery counts for the recipient it went to (UNDECLARED: none claims it)."""
    from .observe.sinks import classify

    with _LOCK:
        for sink in sinks:
            _RECIPIENTS.setdefault(sink["name"], {"role": sink.get("role") or "", "deliveries": set()})
        for cap in captures:
            sink = classify(cap.path, sinks)
            name, role = (sink["name"], sink.get("role") or "") if sink else ("UNDECLARED", "undeclared")
            _RECIPIENTS.setdefault(name, {"role": role, "deliveries": set()})["deliveries"].add(cap.seq)


def note_browser(parties, requests) -> None:
    """A visit's parties (observe/browser.Parties) and the requests its browser made: every
    declared recipient was watched, and each request counts for the party its host belongs to."""
    with _LOCK:
        for r in parties.recipients:
            _BROWSER.setdefault(r["name"], {"role": r.get("role") or "", "domain": ", ".join(r.get("domains") or []),
                                            "requests": 0})
        for req in requests:
            party = req.party
            # an undeclared host is its own entry, named by its domain
            name = party.domain if party.role == "undeclared" else party.name
            entry = _BROWSER.setdefault(name, {"role": party.role, "domain": party.domain, "requests": 0})
            entry["requests"] += 1


def snapshot() -> dict:
    """This process's record, as JSON-able data (sorted, so two runs compare line by line)."""
    with _LOCK:
        stores = [{"name": name, "kind": s["kind"], "units": dict(s["units"]),
                   "locations": sorted(s["locations"]), "unswept": sorted(s["unswept"])}
                  for name, s in sorted(_STORES.items())]
        recipients = [{"name": name, "role": r["role"], "deliveries": sorted(r["deliveries"])}
                      for name, r in sorted(_RECIPIENTS.items())]
        browser = [{"name": name, **b} for name, b in sorted(_BROWSER.items())]
    return {"stores": stores, "recipients": recipients, "browser_parties": browser}


def merge(snapshots: list[dict]) -> dict:
    """Several processes' records as one (the controller merges its workers')."""
    stores: dict[str, dict] = {}
    recipients: dict[str, dict] = {}
    browser: dict[str, dict] = {}
    for snap in snapshots:
        for s in snap.get("stores") or []:
            entry = stores.setdefault(s["name"], {"name": s["name"], "kind": s.get("kind"), "units": {},
                                                  "locations": set(), "unswept": set()})
            for unit, n in (s.get("units") or {}).items():
                entry["units"][unit] = max(n, entry["units"].get(unit, 0))
            entry["locations"].update(s.get("locations") or [])
            entry["unswept"].update(s.get("unswept") or [])
        for r in snap.get("recipients") or []:
            entry = recipients.setdefault(r["name"], {"name": r["name"], "role": r.get("role") or "",
                                                      "deliveries": set()})
            entry["deliveries"].update(r.get("deliveries") or [])
        for b in snap.get("browser_parties") or []:
            entry = browser.setdefault(b["name"], {**b, "requests": 0})
            entry["requests"] += b.get("requests") or 0
    return {
        "stores": [{**s, "locations": sorted(s["locations"]), "unswept": sorted(s["unswept"])}
                   for _, s in sorted(stores.items())],
        # deliveries as a count: the capture's sequence numbers mean nothing outside the run
        "recipients": [{"name": r["name"], "role": r["role"], "deliveries_read": len(r["deliveries"])}
                       for _, r in sorted(recipients.items())],
        # what a browser saw (suites/web): each party, declared or not, and the requests it received
        "browser_parties": [b for _, b in sorted(browser.items())],
    }
