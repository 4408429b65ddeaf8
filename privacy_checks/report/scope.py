"""What a run covered, and what it did not: the command line, the selection, and every check of
the run's suites that did not run, each with the reason.

A report that lists only the checks that ran cannot tell an auditor that `-k "not no_trace"`
left out the one check that catches a soft delete, or that Ctrl-C stopped the run after one
check; it then reads "all checked promises held". So the run records:

- the checks it planned (collected and selected), and those it deselected (-k, -m,
  --privacy-check, --privacy-clause, --deselect, --lf), with the selection that did it;
- the checks the shipped suites define for the suites the run touched, so a run given one file
  or one node id still names the checks of the suite it left out ("not collected");
- whether it was interrupted (Ctrl-C, a crash) or stopped early (-x, --maxfail).

Under pytest-xdist the workers collect: the controller learns the planned node ids from
xdist's collection hook (mapped to check ids through the suites' source) and the deselected
check ids from each worker's output.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from ..collection import DefinedCheck, defined_checks

NOT_RUN = "not run"

# Options that narrow a run, as a reader would type them; the value is the pytest option's dest.
_SELECTION = (("-k", "keyword"), ("-m", "markexpr"), ("--deselect", "deselect"))
# the framework's own selection, read through settings (a command line option or the config file)
_OWN_SELECTION = (("--privacy-check", "check"), ("--privacy-clause", "clause"))


@dataclass
class Scope:
    command: str = ""
    selection: list[str] = field(default_factory=list)  # "-k 'not no_trace'", …
    planned: set[str] = field(default_factory=set)  # check ids collected and selected
    deselected: set[str] = field(default_factory=set)
    interrupted: str = ""  # why the run ended before its planned checks ran ("" if it did not)

    def note_planned_nodeids(self, nodeids: list[str]) -> None:
        by_test = _by_test()
        for nodeid in nodeids:
            check = by_test.get(_test_key(nodeid))
            if check is not None:
                self.planned.add(check.check_id)

    def not_run(self, ran: set[str], cited: set[str] | None = None) -> list[dict]:
        """Every check with no result that the run's verdict depends on, with why: the checks of
        the suites the run touched, and the checks of other suites citing a clause the run's
        checks cite (`cited`: the citations in the results) — without them that clause is only
        partly tested. In the suites' order."""
        catalog = defined_checks()
        seen = ran | self.planned | self.deselected
        suites = {catalog[c].suite for c in seen if c in catalog}
        clauses = {section_of(c) for c in cited or ()}
        clauses |= {section_of(c) for cid in ran if cid in catalog for c in catalog[cid].clauses}
        how = " ".join(self.selection) or "the run's selection"
        out = []
        ordered = [c for c in catalog if catalog[c].suite in suites]
        ordered += [c for c in catalog if catalog[c].suite not in suites
                    and clauses & {section_of(x) for x in catalog[c].clauses}]
        ordered += sorted(c for c in (self.planned | self.deselected) if c not in catalog)
        for check_id in ordered:
            if check_id in ran:
                continue
            defined = catalog.get(check_id)
            if check_id in self.planned:
                why = f"planned but not run: {self.interrupted}" if self.interrupted else \
                    "planned but not run (no result was reported for it)"
            elif check_id in self.deselected:
                why = f"deselected by {how}"
            elif defined is not None and defined.suite not in suites:
                why = (f"not in this run: suite {defined.suite} was not run, and this check cites a clause "
                       "the run's checks cite")
            else:
                why = "not collected: the command line named only part of its suite"
            out.append({"check_id": check_id, "reason": why,
                        "test": _nodeid_hint(defined),
                        "clauses": list(defined.clauses) if defined else []})
        return out

    def to_dict(self, ran: set[str], cited: set[str] | None = None) -> dict:
        return {"command": self.command, "selection": list(self.selection),
                "interrupted": self.interrupted or None, "not_run": self.not_run(ran, cited)}


def section_of(citation: str) -> str:
    """'ccpa:1798.100(e)' -> 'ccpa:1798.100': clauses are compared by section."""
    return citation.split("(", 1)[0].strip().lower()


def command_line(config) -> str:
    args = list(config.invocation_params.args)
    return "pytest " + " ".join(shlex.quote(str(a)) for a in args)


def selection_of(config) -> list[str]:
    from ..settings import value as setting

    out = []
    values = [(flag, getattr(config.option, dest, None)) for flag, dest in _SELECTION]
    for flag, name in _OWN_SELECTION:
        try:
            values.append((flag, setting(config, name)))
        except (ValueError, AttributeError):
            pass
    for flag, value in values:
        for v in value if isinstance(value, list | tuple) else [value]:
            if v:
                out.append(f"{flag} {shlex.quote(str(v))}")
    if getattr(config.option, "lf", False):
        out.append("--lf")
    return out


def _test_key(nodeid: str) -> tuple[str, str]:
    """A node id as pytest writes it for a shipped suite ("suites/ccpa/test_x.py::test_y[p]",
    or the installed package's path) as (its file's last two parts, the test's name): the key
    the suites' source is read into."""
    path, _, name = nodeid.partition("::")
    name = name.split("::")[-1].split("[", 1)[0]
    return "/".join(path.replace("\\", "/").split("/")[-2:]), name


def _by_test() -> dict[tuple[str, str], DefinedCheck]:
    return {(c.file, c.test): c for c in defined_checks().values()}


def _nodeid_hint(defined: DefinedCheck | None) -> str | None:
    return f"suites/{defined.file}::{defined.test}" if defined else None
