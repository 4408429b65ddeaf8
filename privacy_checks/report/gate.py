"""The run's verdict for a release pipeline: one exit status and one line of counts in words.

pytest's exit status stays by default (non-zero on any failure or error). With
``--privacy-exit-codes`` (ini ``privacy_exit_codes``, ``PRIVACY_CHECKS_EXIT_CODES=1``):

| exit | meaning |
|------|---------|
| 0 | every check held; *not applicable* and *waived* allowed, and *not verified* unless `--privacy-fail-not-verified` |
| 1 | a promise is broken (or a test that is not a privacy check failed) |
| 3 | nothing is broken, but some check could not be made (*error*: target unreachable, control failed, bad profile) |
| 6 | only *not verified* checks, under `--privacy-fail-not-verified` |

pytest's own statuses win whatever the outcomes: 2 interrupted, 4 usage error (bad option,
marker, waiver file or profile path), 5 nothing collected. With ``--privacy-fail-on new`` a
broken promise counts only when it is new against the baseline (newly broken, or broken in a
new place); a check that could not be made always counts, since it may hide a new break.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pytest

HELD, BROKEN, NOT_CHECKED, NOT_VERIFIED_ONLY = 0, 1, 3, 6

# The words each outcome is counted under, in the order the summary line gives them.
WORDS = (("passed", "held"), ("failed", "broken"), ("error", "could not be checked"),
         ("not applicable", "not applicable"), ("not verified", "not verified"), ("waived", "waived"))


@dataclass
class Verdict:
    code: int
    reason: str
    overridden: bool  # False: pytest's own status stands


def count(outcomes: Iterable[str]) -> dict[str, int]:
    found = {outcome: 0 for outcome, _ in WORDS}
    found["skipped"] = 0
    for outcome in outcomes:
        found[outcome if outcome in found else "skipped"] += 1
    return found


def in_words(counts: dict[str, int], *, new_broken: int | None = None) -> str:
    parts = []
    for outcome, words in WORDS:
        text = f"{counts[outcome]} {words}"
        if outcome == "failed" and new_broken is not None:
            text += f" ({new_broken} new)"
        parts.append(text)
    if counts.get("skipped"):
        parts.append(f"{counts['skipped']} skipped")
    return ", ".join(parts)


def decide(counts: dict[str, int], *, pytest_status: int, exit_codes: bool, fail_not_verified: bool,
           fail_on_new: bool, new_broken: int, other_failures: int) -> Verdict:
    """The status the run should end with. `new_broken`: broken checks that are new against the
    baseline (only read with `fail_on_new`); `other_failures`: failed tests that are not
    privacy checks."""
    if pytest_status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return Verdict(int(pytest_status), f"pytest's own status ({pytest.ExitCode(pytest_status).name})", False)
    broken = new_broken if fail_on_new else counts["failed"]
    if broken or other_failures:
        what = (f"{broken} promise(s) {'newly ' if fail_on_new else ''}broken" if broken else "")
        if other_failures:
            what += ("; " if what else "") + f"{other_failures} other test(s) failed"
        code, reason = BROKEN, what
    elif counts["error"]:
        code = NOT_CHECKED if exit_codes else BROKEN
        reason = f"nothing broken, but {counts['error']} check(s) could not be made"
    elif fail_not_verified and counts["not verified"]:
        code = NOT_VERIFIED_ONLY if exit_codes else BROKEN
        reason = f"only {counts['not verified']} not verified check(s) (--privacy-fail-not-verified)"
    else:
        code = HELD
        reason = ("every promise checked held" if not counts["failed"] else
                  f"{counts['failed']} known broken promise(s), none new (--privacy-fail-on new)")
    if not (exit_codes or fail_on_new):
        return Verdict(int(pytest_status), reason, False)
    return Verdict(code, reason, code != int(pytest_status))
