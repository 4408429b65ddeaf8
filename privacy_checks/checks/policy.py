"""Judgements of the policy's promises against what the target does (suites/policy), one each.

"Promise kept" and "law met" are separate checks: a target can keep every word of its
policy while the policy itself falls short of the law (a category it holds that the policy
never addresses), and the reverse.
"""

from __future__ import annotations

from datetime import date

from ..outcomes import CheckError, NotApplicable, PromiseBroken, examined
from ..policy import CATEGORY_TITLES, field_categories, months_between
from .common import lines as _lines
from .common import usable as _usable


def _held_lines(outcome, categories) -> list[str]:
    lines = []
    for cat, items in sorted(outcome.categories().items()):
        if cat in categories:
            for h in items:
                line = f"category {cat}: field {h.field} ({h.form}) at {h.where}"
                if line not in lines:
                    lines.append(line)
    return lines


# -- disclosures -------------------------------------------------------------------------------

def _swept_whole(outcome) -> None:
    """Each disclosure check claims an absence over what the stores hold: a place the sweep
    could not read may hold exactly what it looks for, so the claim cannot be made over it."""
    if outcome.unswept:
        raise CheckError("parts of the stores could not be swept, so what they hold is unknown there:\n  "
                         + "\n  ".join(outcome.unswept))


def no_undisclosed_category(outcome, policy) -> None:
    """Promise kept: the target holds nothing in a category the policy says it does not collect."""
    _usable(outcome)
    denied = {c for c in outcome.categories() if policy.collected(c) is False}
    if denied:
        names = ", ".join(f"{c} ({policy.category_title(c)})" for c in sorted(denied))
        raise PromiseBroken(f"the policy marks {names} not collected, yet the target holds subject "
                            f"{outcome.subject}'s data in it:" + _lines(_held_lines(outcome, denied)))
    _swept_whole(outcome)
    examined("places holding the subject, classified", outcome.held)


def categories_collected_disclosed(outcome, policy) -> None:
    """Law met: every category the target holds is one the policy discloses as collected."""
    _usable(outcome)
    if not policy.categories:
        raise PromiseBroken(f"the policy {policy.path.name} has no category table, yet the target holds "
                            f"categories {', '.join(sorted(outcome.categories()))} (Cal. Civ. Code "
                            "§1798.130(a)(5)(B)(i) requires the list)")
    undisclosed = {c for c in outcome.categories() if policy.collected(c) is not True}
    if undisclosed:
        names = ", ".join(f"{c} ({'marked NO' if policy.collected(c) is False else 'not addressed'}: "
                          f"{CATEGORY_TITLES.get(c, c)})" for c in sorted(undisclosed))
        raise PromiseBroken(f"the target holds categories its policy does not disclose as collected — {names}; "
                            "the privacy policy must list every category collected in the preceding 12 months "
                            "(Cal. Civ. Code §1798.130(a)(5)(B)(i)):" + _lines(_held_lines(outcome, undisclosed)))
    _swept_whole(outcome)
    examined("places holding the subject, classified", outcome.held)


def fields_in_policy_lists(outcome, policy) -> None:
    """Every field the target stores is one the policy's field lists name."""
    _usable(outcome)
    if not policy.field_lists():
        raise NotApplicable(f"the policy {policy.path.name} lists no specific fields collected")
    listed = policy.listed_fields()
    extra = {f: locs for f, locs in outcome.fields_held.items() if f not in listed}
    if extra:
        lines = [f"field {f} at {'; '.join(locs)}" for f, locs in sorted(extra.items())]
        lists = ", ".join(lst["id"] for lst in policy.field_lists())
        raise PromiseBroken(f"the target stores subject {outcome.subject}'s fields that none of the policy's "
                            f"field lists ({lists}) mention:" + _lines(lines))
    _swept_whole(outcome)
    examined("fields the target stores", outcome.fields_held)


def recipients_get_disclosed_categories_only(outcome, policy) -> None:
    """Promise kept: what service providers and third parties receive falls in the categories the
    policy says are disclosed for a business purpose.

    Category L (sensitive personal information) is left to the right-to-limit checks: a category
    table written before the CPRA cannot list it, and a sensitive field's own category (B for a
    driver's licence number, G for a precise location) is judged here.
    """
    _usable(outcome)
    statement = policy.california.get("disclosed_for_business_purpose")
    if not policy.categories or not statement:
        raise NotApplicable(f"the policy {policy.path.name} states no categories disclosed for a business "
                            "purpose, so there is no list to hold the recipients to (its absence is a finding "
                            "of `privacy-checks policy`, Cal. Civ. Code §1798.130(a)(5)(C))")
    allowed = set(statement.get("categories") or [])
    found: list[str] = []
    shown: set[tuple[str, str, str]] = set()
    for d in outcome.received:
        for cat in field_categories(d.field):
            if cat == "L" or cat in allowed or (d.sink, d.field, cat) in shown:
                continue
            shown.add((d.sink, d.field, cat))
            state = "marked not collected" if policy.collected(cat) is False else "not listed as disclosed"
            found.append(f"category {cat} ({CATEGORY_TITLES.get(cat, cat)}, {state}): {d.describe()}")
    if found:
        listed = ", ".join(sorted(allowed)) or "none"
        raise PromiseBroken(f"recipients received subject {outcome.subject}'s data in categories the policy does "
                            f"not disclose (it lists {listed} as disclosed for a business purpose):"
                            + _lines(found))
    examined("fields delivered to recipients, classified", outcome.received)


# -- review and change -------------------------------------------------------------------------

def review_and_change(outcome) -> None:
    _usable(outcome)
    problems = [f"the profile page {outcome.read_url} does not show the held field {f}" for f in outcome.not_shown]
    problems += [f"after the subject's own update, {outcome.read_url}: {line}" for line in outcome.not_changed]
    if problems:
        raise PromiseBroken("the subject cannot review and change its personal information by logging in:"
                            + _lines(problems))
    examined("fields changed and read back", outcome.changed)


# -- the policy page ---------------------------------------------------------------------------

def last_revised_date_shown(outcome) -> None:
    _usable(outcome)
    from ..flows.promises import TOP_CHARS

    if outcome.date is None:
        raise PromiseBroken(f"the policy page {outcome.url} shows no \"Last modified\" (or \"Last updated\", "
                            f"\"Effective\") date anywhere; its text begins: «{outcome.excerpt}»")
    if outcome.date_position > TOP_CHARS:
        raise PromiseBroken(f"the policy page {outcome.url} shows its date («{outcome.date_text}») only "
                            f"{outcome.date_position} characters into its text, not at the top; it begins: "
                            f"«{outcome.excerpt}»")
    examined("policy pages read", 1)


def updated_within_12_months(outcome, today: date | None = None) -> None:
    """Law met: the policy the target serves was updated in the last 12 months."""
    _usable(outcome)
    if outcome.date is None:
        raise CheckError(f"the policy page {outcome.url} shows no date, so its age cannot be told "
                         "(see policy.page.last-revised-date-shown)")
    today = today or date.today()
    age = months_between(outcome.date, today)
    if age >= 12:
        raise PromiseBroken(f"the policy page {outcome.url} was last revised {outcome.date.isoformat()} "
                            f"(«{outcome.date_text}»), {age} months before {today.isoformat()}; Cal. Civ. Code "
                            "§1798.130(a)(5) requires an update at least once every 12 months")
    examined("policy pages read", 1)


def new_text_new_date(outcome) -> None:
    """A changed policy text carries a new date; the ledger keeps the previous run's hash."""
    _usable(outcome)
    prev = outcome.previous
    if prev is None:
        raise NotApplicable(f"first observation of the policy page {outcome.url} for this target: its sha256 "
                            f"{outcome.sha256[:16]}… and date are now in the ledger; the next run compares")
    examined("earlier observations compared", 1)
    if prev["sha256"] == outcome.sha256:
        return
    now = outcome.date.isoformat() if outcome.date else None
    before = prev.get("last_modified")
    if now is None or now == before or (before and now < before):
        shown = f"«{outcome.date_text}»" if outcome.date_text else "no date"
        raise PromiseBroken(f"the policy text at {outcome.url} changed since {prev['seen_at']} (sha256 "
                            f"{prev['sha256'][:16]}… → {outcome.sha256[:16]}…) but its date did not move on: it "
                            f"shows {shown}, and showed {before or 'no date'} before")
