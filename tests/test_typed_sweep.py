"""Typed canaries (card numbers, dates, instants, integers, amounts) and the typed sweep, against
real SQLite files and a real PostgreSQL: found in their own column types, as text, and never by
casting every value to text."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from privacy_checks.observe.stores import StoreSpec, sweep
from privacy_checks.observe.typed import TypedNeedle, TypedPlan, card_groups, parse_moment
from privacy_checks.subjects import DEFAULT_IIN, SubjectFactory, luhn_valid

TYPED = {"loyalty": {"strategy": "integer"}, "total": {"strategy": "amount"}}


def make_subjects(n: int = 2, **kwargs):
    factory = SubjectFactory(seed="typed", nonce="n0", fields=["full_name", "card_number", "date_of_birth", "moment"],
                             extra_fields=["loyalty", "total"], strategies=TYPED, **kwargs)
    return [factory.build("test_typed", role="subject") for _ in range(n)]


ADA, BOB = make_subjects()


def found(result, subject=ADA) -> dict[tuple[str, str], tuple[str, bool]]:
    """(table.column, field) -> (form, weak) of the subject's hits."""
    out = {}
    for h in result.hits:
        if h.subject_id == subject.id:
            out.setdefault((f"{h.table_or_path}.{h.column_or_line}", h.field), (h.form, h.weak))
    return out


def moment(subject) -> datetime:
    return parse_moment(subject.fields["moment"])


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, new_database):
    return request.param, new_database(request.param)


# -- the strategies ------------------------------------------------------------------------------

def test_card_numbers_are_luhn_valid_from_a_range_no_issuer_uses_and_unique():
    subjects = make_subjects(200)
    cards = [s.fields["card_number"] for s in subjects]
    assert all(len(c) == 16 and luhn_valid(c) and c.startswith(DEFAULT_IIN) for c in cards)
    assert DEFAULT_IIN[0] == "0"  # major industry identifier 0: ISO/TC 68, no card issuer
    assert len(set(cards)) == len(cards)
    assert not luhn_valid(cards[0][:-1] + str((int(cards[0][-1]) + 1) % 10))


def test_birth_dates_never_repeat_within_a_run_nor_reuse_a_live_subjects():
    subjects = make_subjects(300)
    births = [s.fields["date_of_birth"] for s in subjects]
    assert len(set(births)) == len(births)
    assert all(date(1940, 1, 1) <= date.fromisoformat(b) <= date(2004, 12, 31) for b in births)
    # a value another live subject of the target holds (the ledger's) is drawn again
    first = make_subjects(1)[0].fields["date_of_birth"]
    again = make_subjects(1, taken=lambda field: {first} if field == "date_of_birth" else set())[0]
    assert again.fields["date_of_birth"] != first


def test_moments_are_recent_distinct_and_keep_a_distinctive_sub_millisecond_part():
    subjects = make_subjects(20)
    moments = [moment(s) for s in subjects]
    assert len(set(moments)) == len(moments)
    now = datetime.now(UTC)
    for m in moments:
        assert now - timedelta(minutes=5) < m < now
        assert m.microsecond // 1000 != 0 and m.microsecond % 1000 != 0
    assert subjects[0].fields["moment"].endswith("Z")


def test_typed_strategies_say_what_a_match_proves_and_templates_keep_numbers():
    strong = set(ADA.strong_fields())
    assert {"card_number", "moment", "loyalty"} <= strong
    assert not {"date_of_birth", "total"} & strong
    needles = {n.field: n for n in ADA.needles()}
    assert isinstance(needles["card_number"], TypedNeedle) and needles["card_number"].kind == "card_number"
    assert needles["date_of_birth"].kind == "date" and needles["date_of_birth"].weak
    context = ADA.template_context()
    assert context["loyalty"] == int(ADA.fields["loyalty"]) and isinstance(context["total"], float)
    assert 1_000_000_000 <= context["loyalty"] <= 2_147_483_647  # fits a 32-bit INTEGER column


def test_renderings_found_inside_text_with_digit_boundaries():
    plan = TypedPlan([n for n in ADA.needles() if isinstance(n, TypedNeedle)])
    card = ADA.fields["card_number"]
    text = f"paid with {card_groups(card, ' ')} on {moment(ADA).strftime('%Y-%m-%dT%H:%M:%S.%f')}Z"
    forms = {(m.needle.field, m.form) for m in plan.find(text)}
    assert ("card_number", "spaced") in forms and ("moment", "ISO text") in forms
    assert not plan.find("9" + card + "1")  # inside a longer number: another number


# -- found in their own column types, on both engines ---------------------------------------------

meta = sa.MetaData()
accounts = sa.Table(
    "accounts", meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("card_text", sa.String(40)),
    sa.Column("card_int", sa.BigInteger),
    sa.Column("card_num", sa.Numeric(20, 0)),
    sa.Column("last4", sa.String(20)),
    sa.Column("born", sa.Date),
    sa.Column("born_text", sa.String(20)),
    sa.Column("loyalty", sa.Integer),
    sa.Column("loyalty_text", sa.Text),
    sa.Column("total", sa.Numeric(10, 2)),
    sa.Column("total_real", sa.Float),
    sa.Column("total_cents", sa.Integer),
    sa.Column("active", sa.Boolean),
)
logins = sa.Table(  # no text column at all: only the instant says whose it is
    "logins", meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer),
    sa.Column("at", sa.DateTime(timezone=True)),
    sa.Column("at_naive", sa.DateTime),
    sa.Column("at_ms", sa.BigInteger),
    sa.Column("at_s", sa.Integer),
    sa.Column("at_text", sa.String(40)),
)
payments = sa.Table(  # a masked card and a name: the last four count only beside the canary
    "payments", meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("holder", sa.Text),
    sa.Column("last4", sa.String(20)),
)


def populate(url: str) -> None:
    engine = sa.create_engine(url)
    meta.create_all(engine)
    rows = []
    for i, s in enumerate((ADA, BOB), 1):
        card = s.fields["card_number"]
        rows.append(dict(id=i, name=s.fields["full_name"], card_text=card_groups(card, "-") if i == 1 else card,
                         card_int=int(card), card_num=Decimal(int(card)), last4=f"**** {card[-4:]}",
                         born=date.fromisoformat(s.fields["date_of_birth"]),
                         born_text=date.fromisoformat(s.fields["date_of_birth"]).strftime("%m/%d/%Y"),
                         loyalty=int(s.fields["loyalty"]), loyalty_text=f"member {s.fields['loyalty']}",
                         total=Decimal(s.fields["total"]), total_real=float(s.fields["total"]),
                         total_cents=int(Decimal(s.fields["total"]) * 100), active=True))
    with engine.begin() as conn:
        conn.execute(accounts.insert(), rows)
        conn.execute(logins.insert(), [
            dict(id=i, user_id=None, at=moment(s), at_naive=moment(s).replace(tzinfo=None),
                 at_ms=int(moment(s).timestamp() * 1000), at_s=int(moment(s).timestamp()),
                 at_text=moment(s).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
            for i, s in enumerate((ADA, BOB), 1)])
        conn.execute(payments.insert(), [
            dict(id=1, holder=ADA.fields["full_name"], last4=f"XXXX-{ADA.fields['card_number'][-4:]}"),
            dict(id=2, holder="Somebody Else", last4=f"XXXX-{ADA.fields['card_number'][-4:]}"),
        ])
    engine.dispose()


def test_every_typed_value_found_in_its_column_type_and_as_text(db):
    _, url = db
    populate(url)
    result = sweep([StoreSpec("app", url=url)], ADA.needles() + BOB.needles())
    assert not result.unswept, result.unswept
    mine = found(result)
    assert mine[("accounts.card_text", "card_number")] == ("dashed", False)
    assert mine[("accounts.card_int", "card_number")] == ("integer", False)
    assert mine[("accounts.card_num", "card_number")] == ("integer", False)
    assert mine[("accounts.born", "date_of_birth")][1] is True  # a birth date supports, never proves
    assert mine[("accounts.born_text", "date_of_birth")] == ("text (month/day/year)", True)
    assert mine[("accounts.loyalty", "loyalty")] == ("integer", False)
    assert mine[("accounts.loyalty_text", "loyalty")] == ("text", False)  # found inside the text
    assert mine[("accounts.total", "total")] == ("amount", True)
    assert mine[("accounts.total_real", "total")] == ("amount", True)
    assert mine[("accounts.total_cents", "total")] == ("cents", True)
    assert mine[("logins.at_ms", "moment")] == ("epoch ms", False)
    assert mine[("logins.at_s", "moment")] == ("epoch s", True)  # a second is shared by many events
    assert mine[("logins.at_text", "moment")] == ("ISO text (ms)", False)
    assert mine[("logins.at", "moment")][1] is False and mine[("logins.at_naive", "moment")][1] is False
    # each subject's own values, never the other's
    assert found(result, BOB)[("accounts.card_text", "card_number")] == ("exact", False)
    assert {h.subject_id for h in result.hits if h.table_or_path == "logins" and h.row_key == {"id": 1}} == {ADA.id}
    # the last four only in the row that holds the subject's canary
    last4 = [h for h in result.hits if h.form == "last four"]
    assert {(h.table_or_path, h.row_key["id"]) for h in last4} == {("accounts", 1), ("accounts", 2),
                                                                    ("payments", 1)}
    assert all(h.weak for h in last4)
    assert result.examined["app"]["typed columns"] > 0


def test_instants_truncated_to_the_columns_precision_are_found(new_database):
    url = new_database("postgresql")
    engine = sa.create_engine(url)
    m = moment(ADA).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE visits (id serial PRIMARY KEY, at3 timestamp(3), at0 timestamp(0), "
                             "tod time, day date)")
        conn.execute(sa.text("INSERT INTO visits (at3, at0, tod, day) VALUES (:a, :b, :c, :d)"),
                     {"a": m, "b": m, "c": m.time(), "d": m.date()})
    engine.dispose()
    mine = found(sweep([StoreSpec("app", url=url)], ADA.needles()))
    assert mine[("visits.at3", "moment")] == ("timestamp (ms)", False)  # PostgreSQL rounds to the precision
    assert mine[("visits.at0", "moment")] == ("timestamp (s)", True)
    assert mine[("visits.tod", "moment")] == ("time of day", True)
    assert ("visits.day", "moment") not in mine  # a day is everybody's


def test_sqlite_loose_typing_text_in_an_integer_column_and_the_reverse(tmp_path):
    path = tmp_path / "loose.db"
    card, m = ADA.fields["card_number"], moment(ADA)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE cards (id INTEGER PRIMARY KEY, number INTEGER, code TEXT, stamp DATETIME, "
                 "born DATE, paid REAL, anything)")
    conn.execute("INSERT INTO cards VALUES (1, ?, ?, ?, ?, ?, ?)", (
        card_groups(card, " "),  # not a well-formed integer: SQLite keeps it as TEXT in the INTEGER column
        int(ADA.fields["loyalty"]),  # an integer bound into a TEXT column: stored as text
        (m - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds(),  # a DATETIME holding epoch seconds as REAL
        int(date.fromisoformat(ADA.fields["date_of_birth"]).strftime("%Y%m%d")),
        ADA.fields["total"],  # text of a number into a REAL column: stored as REAL
        int(card),  # a column without a declared type holding an integer
    ))
    conn.commit()
    assert conn.execute("SELECT typeof(number), typeof(code), typeof(stamp), typeof(anything) FROM cards").fetchone() \
        == ("text", "text", "real", "integer")
    conn.close()
    result = sweep([StoreSpec("app", url=f"sqlite:///{path}")], ADA.needles())
    mine = found(result)
    assert mine[("cards.number", "card_number")] == ("spaced", False)
    assert mine[("cards.code", "loyalty")] == ("text", False)
    assert mine[("cards.stamp", "moment")] == ("epoch s (fractional)", False)
    assert mine[("cards.born", "date_of_birth")] == ("integer (yyyymmdd)", True)
    assert mine[("cards.paid", "total")] == ("amount", True)
    assert mine[("cards.anything", "card_number")] == ("integer", False)


def test_typed_columns_are_compared_in_their_own_type_never_cast_to_text(db):
    kind, url = db
    populate(url)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        result = sweep([StoreSpec("app", url=url, include_tables=["logins"])], ADA.needles())
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert found(result)[("logins.at_ms", "moment")] == ("epoch ms", False)
    swept = [s for s in statements if "FROM logins" in s]
    # one scan per table, and one lookup per typed column an index starts with (the primary key)
    scan = [s for s in swept if "LOGINS.AT_MS IN (" in s.upper()]
    assert len(scan) == 1 and len(swept) == 2, statements
    lookup = next(s for s in swept if s not in scan).upper()
    assert "WHERE LOGINS.ID IN (" in lookup and "LOGINS.ID IN (" not in scan[0].upper()
    sql = scan[0].upper()
    for column in ("at", "at_naive", "at_ms", "at_s", "user_id"):
        assert f"LOGINS.{column.upper()} IN (" in sql
        assert f"CAST(LOGINS.{column.upper()} " not in sql and f"LOGINS.{column.upper()}::" not in sql


def test_without_typed_values_typed_columns_are_not_read(db):
    _, url = db
    populate(url)
    text_only = [n for n in ADA.needles() if not isinstance(n, TypedNeedle)]
    result = sweep([StoreSpec("app", url=url)], text_only)
    assert "typed columns" not in result.examined["app"]
    assert not [h for h in result.hits if h.table_or_path == "logins"]


def test_a_vendor_type_that_cannot_be_compared_is_unswept_with_its_reason(new_database):
    url = new_database("postgresql")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE invoices (id serial PRIMARY KEY, total money, note text)")
        conn.exec_driver_sql("INSERT INTO invoices (total, note) VALUES (12.5, 'x')")
    engine.dispose()
    result = sweep([StoreSpec("app", url=url)], ADA.needles())
    assert [(u.where, "vendor type" in u.reason) for u in result.unswept] == [("invoices.total", True)]
    assert "exclude_columns" in result.unswept[0].reason
    excluded = sweep([StoreSpec("app", url=url, exclude_columns=["invoices.total"])], ADA.needles())
    assert not excluded.unswept
    # without typed values the column is no concern of the typed sweep
    assert not sweep([StoreSpec("app", url=url)], [n for n in ADA.needles() if not isinstance(n, TypedNeedle)]).unswept


def test_the_ledger_knows_which_birth_dates_live_subjects_hold(tmp_path):
    from privacy_checks.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    run = ledger.start_run("shop", seed="s", nonce="n", lease_seconds=60)
    ledger.record_intent(run, "shop", ADA)
    ledger.record_intent(run, "shop", BOB)
    ledger.update_subject(BOB.id, state="deleted")
    assert ledger.live_values("shop", "date_of_birth") == {ADA.fields["date_of_birth"]}
    assert ledger.live_values("other", "date_of_birth") == set()
    ledger.close()


def test_the_prefix_tree_pattern_finds_what_the_flat_alternation_finds():
    """TypedPlan searches texts with one prefix-tree expression; it must match exactly the
    renderings, longest first, like the alternation it replaced (which was 100x slower)."""
    import random
    import re

    from privacy_checks.observe.typed import trie_pattern

    rng = random.Random(3)
    words = sorted({"".join(rng.choice("12-/: .") for _ in range(rng.randint(1, 9))) for _ in range(400)}
                   | {"2026-11-29", "2026-11-29T10:11:12", "2026-11-29T10:11:12.739Z", "$1,234.50", "1234"})
    tree = re.compile(f"(?<![0-9])(?:{trie_pattern(words)})(?![0-9])")
    flat = re.compile("(?<![0-9])(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
                      + ")(?![0-9])")
    for word in words:
        assert tree.fullmatch(word), word
    assert not tree.fullmatch("2026-11-2")
    texts = ["at 2026-11-29T10:11:12.739Z and 2026-11-29 then 12026-11-29 / $1,234.50 / 12345 1234"]
    texts += ["".join(rng.choice("0123456789-/: .x") for _ in range(300)) for _ in range(50)]
    for text in texts:
        assert [m.span() for m in tree.finditer(text)] == [m.span() for m in flat.finditer(text)]
    first = [m.group() for m in tree.finditer(texts[0]) if len(m.group()) > 3]
    assert first == ["2026-11-29T10:11:12.739Z", "2026-11-29", "$1,234.50", "1234"]


def test_a_weak_match_never_makes_a_store_hold_the_subject_for_the_positive_control(tmp_path):
    """A log line's own timestamp equalled the subject's instant to the second (a weak form): the
    deletion procedure counted the log as holding the subject, then failed its barrier there
    ('never became visible in store(s) logs') and saw the control 'vanish' from it — an error
    of no-residual-data and others-intact that depended on the clock. Only proof counts."""
    from datetime import datetime

    from privacy_checks.evidence import Evidence
    from privacy_checks.flows.deletion import DeletionOutcome, _stores_control
    from privacy_checks.observe.stores import StoreSpec, sweep
    from privacy_checks.subjects import SubjectFactory

    factory = SubjectFactory(seed="weak-held", nonce="n1", fields=["full_name", "email", "moment"])
    subject, control = factory.build("t_weak", "subject"), factory.build("t_weak", "control")
    moment = datetime.fromisoformat(subject.fields["moment"].replace("Z", "+00:00"))
    log = tmp_path / "app.log"
    log.write_text(f"{moment:%Y-%m-%d %H:%M:%S},123 INFO demo started\n")  # the second only, another ms
    app = tmp_path / "app.db"
    conn = sqlite3.connect(app)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.executemany("INSERT INTO users (email) VALUES (?)", [(subject.fields["email"],), (control.fields["email"],)])
    conn.commit()
    conn.close()
    specs = [StoreSpec("app", url=f"sqlite:///{app}"), StoreSpec("logs", files=[str(log)])]
    # the sweep does see the weak form (it is shown beside proof elsewhere) ...
    weak = [h for h in sweep(specs, subject.needles(subject.strong_fields())).hits if h.store == "logs"]
    assert weak and all(h.weak and h.field == "moment" for h in weak), weak
    # ... but the positive control holds the subject only where proof is
    out = DeletionOutcome()
    _stores_control(specs, set(), subject, control, [], 1, out, Evidence("ccpa.delete.no-residual-data"))
    assert out.held == ["app"], out.held


@pytest.mark.parametrize("encoding", ["UTF-8", "UTF-16le"])
def test_every_proof_rendering_kept_as_a_whole_text_is_found_whatever_the_collation(tmp_path, encoding):
    """SQLite tests a text column for the typed values' texts behind a range gate (the smallest to
    the largest rendering, in byte order): the gate must let every rendering through, the two
    ends included, in a column that sorts case-insensitively and in a UTF-16 database."""
    from privacy_checks.observe.stores.base import Plan

    needles = [n for s in (ADA, BOB) for n in s.needles()]
    renderings = Plan(needles, ("exact",)).typed.proof_text_values
    assert len(renderings) > 20 and min(renderings) != max(renderings)
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA encoding = '{encoding}'")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT COLLATE NOCASE, w TEXT)")
    rows = [(i, r, None) for i, r in enumerate(renderings)]
    rows += [(1000 + i, None, r) for i, r in enumerate(renderings)]
    rows += [(2000 + i, f"filler {i}", str(10 ** 9 + i)) for i in range(200)]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    conn.commit()
    conn.close()
    result = sweep([StoreSpec("app", url=f"sqlite:///{path}")], needles, forms=["exact"])
    got = {h.row_key["id"] for h in result.hits if not h.weak}
    assert got == {i for i, *_ in rows[:2 * len(renderings)]}
    assert not result.unswept


def test_an_indexed_typed_column_is_compared_by_index_lookups_and_its_values_found(db):
    """A typed column an index starts with (the primary key, an indexed card number) is not
    tested row by row in the scan: a query of its own finds its rows through the index."""
    kind, url = db
    engine = sa.create_engine(url)
    table = sa.Table("cards", sa.MetaData(), sa.Column("id", sa.BigInteger, primary_key=True),
                     sa.Column("card", sa.BigInteger, index=True), sa.Column("note", sa.Text))
    table.create(engine)
    loyalty, card = int(ADA.fields["loyalty"]), int(ADA.fields["card_number"])
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": loyalty, "card": 1, "note": "x"},
                                      {"id": 2, "card": card, "note": "y"},
                                      {"id": 3, "card": int(BOB.fields["card_number"]), "note": "z"}]
                     + [{"id": 10 + i, "card": 10**15 + i, "note": "filler"} for i in range(500)])
        if kind == "sqlite":
            statement = sa.select(table.c.id).where(table.c.card.in_([card, 5]))
            plan = " ".join(str(r[-1]) for r in conn.execute(sa.text(
                "EXPLAIN QUERY PLAN " + str(statement.compile(compile_kwargs={"literal_binds": True})))))
            assert "SEARCH" in plan and "INDEX" in plan, plan
    engine.dispose()
    result = sweep([StoreSpec("app", url=url)], ADA.needles())
    assert found(result) == {("cards.id", "loyalty"): ("integer", False), ("cards.card", "card_number"): ("integer", False)}
    assert [t.candidates for t in result.timings if t.where == "cards"] == [2]
