"""The canary format: one case-insensitive literal is in every in-text form (observe/forms.py).

Covered, and enumerated here: every byte alignment of the canary inside encoded data (any
prefix length; the three that differ are 0, 1, 2 modulo 3), every letter case a system applies
(lower, upper, title, capitalize, swapcase) and arbitrary mixes, URL encoding (quote,
quote_plus, percent escapes in either case), base64 in the standard and URL-safe alphabets
with and without padding, the canary alone (token), UTF-8 and UTF-16 bytes.

Not covered by the literal (each asserted below as exactly that, so a change shows):
- base64 wrapped into lines (MIME 76, PEM 64) where a line break falls inside the literal's four
  characters (3 break positions in each line; measured below: at most 4 in 64 placements). Such a value is a candidate only for another
  reason (a plain copy elsewhere in it); the matcher then joins the lines and finds it.
- the short form's base64: the short form drops the run of 4s that puts the literal into
  base64, so its base64 forms are searched for one value at a time (Plan.patterns lists them).
"""

from __future__ import annotations

import base64
import random
import textwrap
import urllib.parse

import pytest
import sqlalchemy as sa
from test_sweep import _fresh_pg_database, found, make_canary, pg_url  # noqa: F401 - pg_url is a fixture

from privacy_checks.observe.forms import (
    CANARY_RE,
    LEGACY_MARKER,
    LITERAL,
    MARKER,
    Needle,
    canary_needles,
    match_text,
    short_canary,
)
from privacy_checks.observe.stores import StoreSpec, sweep
from privacy_checks.observe.stores.base import Plan
from privacy_checks.subjects import SubjectFactory

RNG = random.Random("format")
CANARY = make_canary(RNG)
VALUES = {
    "full_name": f"Ada Lovelace {CANARY}",
    "email": f"ada.lovelace.{CANARY}@example.com",
    "username": f"ada_{CANARY}",
    "password": f"Pw-{CANARY}-9!Xq",
}
NEEDLES = [Needle("s1", f, v) for f, v in VALUES.items()] + canary_needles("s1", VALUES.values())


def _cases(value: str) -> dict[str, str]:
    mixed = "".join(ch.upper() if RNG.random() < 0.5 else ch for ch in value)
    return {
        "lower": value.lower(), "upper": value.upper(), "title": value.title(),
        "capitalize": value.capitalize(), "swapcase": value.swapcase(), "mixed": mixed,
    }


def _urls(value: str) -> dict[str, str]:
    quoted = urllib.parse.quote(value, safe="")
    return {
        "quote": quoted, "quote_plus": urllib.parse.quote_plus(value),
        "lower-hex": __import__("re").sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted),
    }


def _base64s(value: str) -> dict[str, str]:
    out = {}
    for prefix in range(7):  # 0..6 bytes before the value: every alignment, twice
        data = b"\x00\xff{\"a\": 1,"[:prefix] + value.encode() + b"\"}"
        std = base64.b64encode(data).decode()
        out[f"std+{prefix}"] = std
        out[f"std-nopad+{prefix}"] = std.rstrip("=")
        out[f"urlsafe+{prefix}"] = base64.urlsafe_b64encode(data).decode().rstrip("=")
    return out


def test_the_literal_is_in_every_in_text_form_of_every_value():
    for field, value in VALUES.items():
        renderings = {**_cases(value), **_urls(value), **_base64s(value), "token": CANARY.upper()}
        for name, text in renderings.items():
            assert LITERAL in text.lower(), (field, name, text)


def test_the_marker_alone_puts_the_literal_in_its_base64_at_every_alignment():
    """What the design rests on: whatever precedes the canary, the run of 4s behind the literal
    encodes to text holding it; base64 of the upper-cased canary holds it too."""
    for canary in (MARKER + "a" * 10, CANARY, CANARY.upper()):
        for prefix in range(3):
            for tail in (b"", b"x", b"xy"):
                encoded = base64.b64encode(b"\x01" * prefix + canary.encode() + tail).decode()
                assert LITERAL in encoded.lower(), (canary, prefix, tail, encoded)


def test_every_form_is_found_by_the_matcher():
    for field, value in VALUES.items():
        expect = {"lower": "casefold", "upper": "casefold", "title": "casefold", "capitalize": "casefold",
                  "swapcase": "casefold", "mixed": "casefold"}
        changed = {k: v for k, v in {**_cases(value), **_urls(value)}.items() if v != value}
        for name, text in {**changed, **_base64s(value)}.items():
            want = expect.get(name, "urlencoded" if "+" not in name else "base64")
            got = {(m.needle.field, m.form) for m in match_text(f"[{text}]", NEEDLES)}
            assert (field, want) in got, (field, name, text, got)


def _wrapped(value: str, width: int, prefix: int) -> str:
    encoded = base64.b64encode(b"p" * prefix + value.encode()).decode()
    return "\r\n".join(textwrap.wrap(encoded, width))


@pytest.mark.parametrize("width", [64, 76])
def test_line_wrapped_base64_is_covered_unless_a_break_splits_the_literal(width):
    value = VALUES["email"]
    covered = split = 0
    for prefix in range(3 * width):
        text = _wrapped(value, width, prefix)
        joined = text.replace("\r\n", "")
        at = joined.lower().find(LITERAL)
        breaks = {i * width for i in range(1, len(joined) // width + 1)}
        splits_literal = any(at < b < at + len(LITERAL) for b in breaks)
        assert (LITERAL in text.lower()) == (not splits_literal), (prefix, text)
        covered += not splits_literal
        split += splits_literal
        # Once a value is a candidate, the matcher joins the lines wherever they break.
        assert ("email", "base64") in {(m.needle.field, m.form) for m in match_text(text, NEEDLES)}
    # Only a break inside the literal misses: a few placements in each line width.
    assert 0 < split / (covered + split) <= 4 / width


def test_token_form_finds_the_canary_alone_in_any_case():
    """Issue 14 (12): a word index keeps the canary as one upper-cased word."""
    text = f"terms: ADA, {CANARY.upper()}, LOVELACE"
    matches = match_text(text, NEEDLES)
    assert [(m.needle.field, m.form, text[m.start:m.end]) for m in matches] == [
        ("canary", "token", CANARY.upper())
    ]
    # Inside a value that is found whole, the token says nothing more.
    assert [m.form for m in match_text(VALUES["username"], NEEDLES)] == ["exact"]
    short = short_canary(CANARY)
    assert [m.form for m in match_text(f"x {short} y", NEEDLES)] == ["token"]
    # Only when asked: the values of some fields (the old ones of a correction) are not the
    # subject, and every other field still carries the same canary.
    some = [n for n in NEEDLES if n.field == "email"]
    assert match_text(text, some) == []


def test_utf16_bytes_are_read(tmp_path):
    plan = Plan(NEEDLES, ("exact", "casefold", "token"))
    for codec in ("utf-16-le", "utf-16-be"):
        for lead in (b"", b"\x00", b"\x01\x02\x03"):
            data = lead + VALUES["full_name"].encode(codec) + b"\x00\x00"
            assert {(m.needle.field, m.form) for _, m in plan.find_in_bytes(data)} == {("full_name", "exact")}
            assert plan.prefilter.search(data)


def test_canaries_made_by_the_factory_follow_the_format():
    factory = SubjectFactory(seed="1", nonce="n", strategies={"username": {"strategy": "canary", "short": True}})
    subjects = [factory.build("t") for _ in range(200)]
    for s in subjects:
        assert CANARY_RE.fullmatch(s.canary) and s.canary.startswith(MARKER), s.canary
        assert s.fields["username"] == short_canary(s.canary) or s.fields["username"].endswith(short_canary(s.canary))
        assert MARKER not in s.fields["username"]
    assert len({s.canary for s in subjects}) == 200


def test_max_length_picks_the_longest_form_that_fits():
    build = lambda limit: SubjectFactory(  # noqa: E731
        seed="1", nonce="n", strategies={"username": {"strategy": "canary", "max_length": limit}}).build("t")
    full = build(None)
    assert full.fields["username"].endswith(full.canary) and len(full.fields["username"]) > 19
    assert build(19).fields["username"] == full.canary  # the full canary alone
    assert build(18).fields["username"].endswith(short_canary(full.canary))
    assert build(14).fields["username"] == short_canary(full.canary)
    with pytest.raises(ValueError, match="max_length 13 is shorter"):
        build(13)


# --- the same, through real stores -----------------------------------------------------------


def _rows() -> tuple[list[dict], set]:
    """One rendering per row and column kind, and the hits a sweep must report."""
    rows, expected = [], set()
    value = VALUES["full_name"]
    renderings = {**{f"case-{k}": (v, "casefold") for k, v in _cases(value).items()},
                  **{f"url-{k}": (v, "urlencoded") for k, v in _urls(value).items() if v != value},
                  **{f"b64-{k}": (v, "base64") for k, v in _base64s(value).items()},
                  "token": (f"idx {CANARY.upper()} x", "token")}
    for label, (text, form) in renderings.items():
        field = "canary" if form == "token" else "full_name"
        if form == "casefold" and text == value:
            form = "exact"
        for column, stored in (("note", text), ("raw", text.encode("utf-8")), ("raw16", text.encode("utf-16-le"))):
            i = len(rows) + 1
            row = {"id": i, "label": label, "note": None, "raw": None}
            row["raw" if column != "note" else "note"] = stored
            rows.append(row)
            expected.add(("t", "raw" if column != "note" else "note", (("id", i),), field, form, False))
    return rows, expected


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_every_rendering_is_a_candidate_in_real_stores(db, tmp_path, request):
    """Text and BLOB/bytea columns (UTF-8 and UTF-16 in the BLOB), one rendering per row: a row is
    returned as a whole, so one rendering alone per row proves the predicate, not its neighbour."""
    url = f"sqlite:///{tmp_path / 'f.db'}" if db == "sqlite" else _fresh_pg_database(request.getfixturevalue("pg_url"))
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("label", sa.String(40)), sa.Column("note", sa.Text), sa.Column("raw", sa.LargeBinary))
    rows, expected = _rows()
    engine = sa.create_engine(url)
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()
    assert found(sweep([StoreSpec("app", url=url)], NEEDLES)) == expected


def test_legacy_canaries_in_the_ledger_are_still_found(tmp_path):
    """A subject of an earlier run (``pcqz`` canary) must still be found by cleanup checks and
    retention re-checks: its marker and base64 cores join the plan only when such a value is swept."""
    legacy = LEGACY_MARKER + "abcdefgh23"
    old = [Needle("old", "email", f"ada.{legacy}@example.com"), *canary_needles("old", [legacy])]
    assert Plan(NEEDLES, ("exact", "casefold", "base64")).patterns == [(LITERAL, True)]
    plan = Plan(old + NEEDLES, ("exact", "casefold", "base64"))
    assert (LEGACY_MARKER, True) in plan.patterns and (LITERAL, True) in plan.patterns
    url = f"sqlite:///{tmp_path / 'l.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT)")
        token = base64.b64encode(f"x{old[0].value}".encode()).decode()
        conn.exec_driver_sql("INSERT INTO u VALUES (1, ?), (2, ?), (3, ?)",
                             (old[0].value.upper(), f"t={token}", f"see {legacy}"))
    engine.dispose()
    assert found(sweep([StoreSpec("app", url=url)], old)) == {
        ("u", "v", (("id", 1),), "email", "casefold", False),
        ("u", "v", (("id", 2),), "email", "base64", False),
        ("u", "v", (("id", 3),), "canary", "token", False),
    }


def test_base64_lookup_from_the_literal_finds_what_a_search_for_every_core_finds():
    """The matcher finds base64 cores from where the literal occurs (one lookup per core offset
    and length) instead of searching the text for each core: on many subjects' values, encoded at
    every alignment, several to a text, wrapped or not, legacy-format values beside them, both
    find the same places."""
    from privacy_checks.observe.forms import TOKEN_FIELD, Matcher, base64_cores

    rng = random.Random("b64-lookup")
    needles = []
    for i in range(30):
        canary = make_canary(rng, LEGACY_MARKER if i % 10 == 9 else MARKER)
        values = {"email": f"p{i}.{canary}@example.com", "full_name": f"Person {i} {canary}"}
        needles += [Needle(f"s{i}", f, v) for f, v in values.items()] + canary_needles(f"s{i}", values.values())
    matcher = Matcher(needles, ["base64"])
    cores = [(n, c) for n in needles for c in base64_cores(n.value.encode())]
    checked = 0
    for _ in range(300):
        chosen = rng.sample(needles, 3)
        parts = [base64.b64encode(b"x" * rng.randrange(3) + n.value.encode()).decode() for n in chosen]
        text = " ".join(parts + [base64.b64encode(rng.randbytes(30)).decode()])
        if rng.random() < 0.3:
            text = "\n".join(textwrap.wrap(text, 64))
        want = set()
        for view in {text, text.replace("\n", "")}:
            for n, c in cores:
                if c in view:
                    want.add((n.subject_id, n.field))
        found = {(m.needle.subject_id, m.needle.field) for m in matcher.find(text) if m.form == "base64"}
        # a canary alone inside a value found whole is not reported again (Matcher.find)
        values = {k for k in want if k[1] != TOKEN_FIELD}
        assert {k for k in found if k[1] != TOKEN_FIELD} == values, text
        alone = {(n.subject_id, n.field) for n in chosen if n.field == TOKEN_FIELD}
        assert alone <= found <= want, text
        checked += len(want)
    assert checked > 300  # the texts held what the comparison is about
