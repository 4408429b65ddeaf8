"""The residual-data sweep against real SQLite files, a real PostgreSQL and real log files."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import random
import sqlite3
import urllib.parse
import uuid

import pytest
import sqlalchemy as sa
from pg import PostgresUnavailable, start_throwaway_cluster
from sqlalchemy.dialects import postgresql

from privacy_checks.errors import StoreError
from privacy_checks.observe.forms import (
    ALL_FORMS,
    LEGACY_MARKER,
    LITERAL,
    MARKER,
    Needle,
    base64_cores,
    canary_needles,
    expand,
    match_text,
)
from privacy_checks.observe.stores import StoreSpec, sweep
from privacy_checks.observe.stores.sql import _anchor

NO_PG = "PostgreSQL not available: install postgresql or set PRIVACY_CHECKS_TEST_PG_URL"


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory):
    try:
        url, stop = start_throwaway_cluster(tmp_path_factory.mktemp("pg"))
    except PostgresUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"{NO_PG} ({e})")
        pytest.skip(f"{NO_PG} ({e})")
    yield url
    stop()


def _fresh_pg_database(pg_url: str) -> str:
    name = "sweep_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'app.db'}"
    return _fresh_pg_database(request.getfixturevalue("pg_url"))


def make_canary(rng: random.Random, marker: str = MARKER) -> str:
    body = rng.choice("abcdefghijklmnopqrstuvwxyz") + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(9))
    return marker + body


def subject(i: int, rng: random.Random | None = None) -> tuple[str, list[Needle]]:
    rng = rng or random.Random(i)
    canary = make_canary(rng)
    sid = f"s{i:03d}"
    return canary, [
        Needle(sid, "full_name", f"Ada Lovelace {canary}"),
        Needle(sid, "email", f"ada.{canary}@example.com"),
        Needle(sid, "username", f"ada_{canary}"),
        Needle(sid, "phone", f"+1-555-01{i % 100:02d}", weak=True),
    ]


CANARY, NEEDLES = subject(1, random.Random("ada"))
NAME, EMAIL, USERNAME, PHONE = (n.value for n in NEEDLES)
OTHER_CANARY = MARKER + "zzzzzzzzzz"  # carries the marker, belongs to nobody

meta = sa.MetaData()
JSONB = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
users = sa.Table(
    "users",
    meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200)),
    sa.Column("email", sa.Text),
    sa.Column("profile", JSONB),
    sa.Column("avatar", sa.LargeBinary),
    sa.Column("email_sha256", sa.CHAR(64)),
    sa.Column("age", sa.Integer),
)
logs = sa.Table(
    "logs",
    meta,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("line", sa.Text),
)
contacts = sa.Table(  # composite key
    "contacts",
    meta,
    sa.Column("owner", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(20), primary_key=True),
    sa.Column("value", sa.String(100)),
)
keyless = sa.Table("keyless", meta, sa.Column("note", sa.Text))

B64_TOKEN = base64.b64encode(json.dumps({"sub": EMAIL, "iat": 1}).encode()).decode()


def populate(url: str) -> None:
    engine = sa.create_engine(url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            users.insert(),
            [
                {
                    "id": 1,
                    "name": NAME,
                    "email": EMAIL,
                    "profile": {"username": USERNAME, "theme": "dark"},
                    # a NUL before the value: SQLite's LIKE would stop there
                    "avatar": b"\x00\x01\xff meta:" + EMAIL.encode() + b"\x00",
                    "email_sha256": hashlib.sha256(EMAIL.encode()).hexdigest().upper(),
                    "age": 36,
                },
                {
                    "id": 2,
                    "name": f"Someone Else {OTHER_CANARY}",
                    "email": "someone@example.org",
                    "profile": {"username": "else"},
                    "avatar": None,
                    "email_sha256": hashlib.sha256(b"someone@example.org").hexdigest(),
                    "age": 50,
                },
            ],
        )
        conn.execute(
            logs.insert(),
            [
                {"id": 10, "line": f"LOGIN OK for {EMAIL.upper()} from 192.0.2.7"},
                {"id": 11, "line": f"GET /search?q={urllib.parse.quote_plus(NAME)}&page=2 200"},
                {"id": 12, "line": f"auth header Bearer {B64_TOKEN} accepted"},
                {"id": 13, "line": "md5 " + hashlib.md5(EMAIL.encode()).hexdigest()},  # not a whole value
                {"id": 14, "line": hashlib.sha1(EMAIL.strip().lower().encode()).hexdigest()},
                {"id": 15, "line": f"nothing to see {OTHER_CANARY} here"},
                {"id": 16, "line": "phone +1-555-01420 is someone else"},
            ],
        )
        conn.execute(
            contacts.insert(),
            [
                {"owner": 1, "kind": "phone", "value": PHONE},
                {"owner": 1, "kind": "handle", "value": f"@{USERNAME}"},
                {"owner": 2, "kind": "phone", "value": "+1-555-0199"},
            ],
        )
        conn.execute(keyless.insert(), [{"note": "plain"}, {"note": f"call {NAME} back"}])
    engine.dispose()


def found(result) -> set[tuple]:
    return {
        (h.table_or_path, h.column_or_line, _key(h.row_key), h.field, h.form, h.weak) for h in result.hits
    }


def _key(row_key):
    if row_key is None:
        return None
    return tuple(sorted((k, v) for k, v in row_key.items() if k not in ("rowid", "ctid")))


EXPECTED = {
    ("users", "name", (("id", 1),), "full_name", "exact", False),
    ("users", "email", (("id", 1),), "email", "exact", False),
    ("users", "profile", (("id", 1),), "username", "exact", False),
    ("users", "avatar", (("id", 1),), "email", "exact", False),
    ("users", "email_sha256", (("id", 1),), "email", "sha256", False),
    ("logs", "line", (("id", 10),), "email", "casefold", False),
    ("logs", "line", (("id", 11),), "full_name", "urlencoded", False),
    ("logs", "line", (("id", 12),), "email", "base64", False),
    ("logs", "line", (("id", 14),), "email", "sha1", False),
    # contacts (owner 1, phone) holds the phone number alone: a weak value proves nothing, and SQL
    # stores look for weak values only in rows that hold proof (test_a_weak_value_is_looked_for_…)
    ("contacts", "value", (("kind", "handle"), ("owner", 1)), "username", "exact", False),
    ("keyless", "note", (), "full_name", "exact", False),
}


# --- forms -------------------------------------------------------------------------------------


def test_every_non_hash_form_holds_the_literal():
    """The quick version of tests/test_canary_format.py: the forms expand() lists hold it."""
    for form in expand(NEEDLES):
        if form.needle.weak:
            continue
        if form.kind in ("md5", "sha1", "sha256"):
            assert LITERAL not in form.pattern
            continue
        assert LITERAL in form.pattern.lower(), form


@pytest.mark.parametrize("prefix", ["", "x", "xy", "xyz", "wxyz"])
def test_base64_found_at_every_alignment(prefix):
    blob = base64.b64encode((prefix + json.dumps({"email": EMAIL})).encode()).decode()
    assert LITERAL in blob.lower()
    assert [(m.needle.field, m.form) for m in match_text(f"data={blob};", NEEDLES)] == [("email", "base64")]
    urlsafe = base64.urlsafe_b64encode((prefix + "\xff\xfe" + EMAIL).encode("latin-1")).decode()
    assert ("email", "base64") in {(m.needle.field, m.form) for m in match_text(urlsafe, NEEDLES)}


def test_match_text_forms_and_excerpt():
    text = f"user={EMAIL} logged in; hash={hashlib.md5(EMAIL.encode()).hexdigest().upper()}"
    matches = match_text(text, NEEDLES)
    assert [(m.needle.field, m.form) for m in matches] == [("email", "exact"), ("email", "md5")]
    from privacy_checks.observe.forms import excerpt

    m = matches[0]
    assert excerpt(text, m.start, m.end) == f"••••=«{EMAIL}» •••••• ••; ••••=•••…"
    # Our own canaries in the context stay readable, whole even where the window would cut
    # one; everything else is masked.
    other = f"name Ada {CANARY} x"
    assert excerpt(other + " " + EMAIL, len(other) + 1, len(other) + 1 + len(EMAIL)) == (
        f"…{CANARY} • «{EMAIL}»"
    )


def test_weak_value_needs_boundaries_and_other_canaries_are_ignored():
    assert match_text("call +1-555-01420 or 192.0.2.15", NEEDLES) == []
    assert [m.form for m in match_text(f"call {PHONE}.", NEEDLES)] == ["exact"]
    assert match_text(f"call {PHONE}0", NEEDLES) == []
    assert match_text(f"{OTHER_CANARY} {MARKER}{CANARY[len(MARKER):-1]}", NEEDLES) == []
    assert match_text(hashlib.sha256(b"something else").hexdigest(), NEEDLES) == []


# --- SQL stores --------------------------------------------------------------------------------


def test_every_form_found_in_the_right_place(db_url):
    populate(db_url)
    result = sweep([StoreSpec("app", url=db_url)], NEEDLES)
    assert found(result) == EXPECTED
    assert not result.unswept
    hit = next(h for h in result.hits if h.form == "casefold")
    assert hit.store == "app" and hit.location_kind == "table" and hit.subject_id == "s001"
    assert f"«{EMAIL.upper()}»" in hit.excerpt
    assert {t.where for t in result.timings} >= {"users", "logs", "contacts", "keyless", None}


def test_exact_forms_only(db_url):
    populate(db_url)
    result = sweep([StoreSpec("app", url=db_url)], NEEDLES, forms=["exact"])
    assert found(result) == {e for e in EXPECTED if e[4] == "exact"}


def test_a_weak_value_is_looked_for_beside_proof_in_its_row_and_not_alone(db_url):
    """A weak value (a fictional phone number anybody may hold) proves nothing alone. SQL stores
    return every row that holds proof, whole, and name the weak values in it; a row holding only
    a weak value is not looked for (it would only add an uncorroborated line, and cost one more
    test per column: benchmarks/sweep.py)."""
    engine = sa.create_engine(db_url)
    table = sa.Table("people", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("email", sa.Text), sa.Column("phone", sa.Text))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "email": EMAIL, "phone": PHONE},
                                      {"id": 2, "email": "someone@example.org", "phone": PHONE}])
    engine.dispose()
    result = sweep([StoreSpec("app", url=db_url)], NEEDLES)
    assert found(result) == {("people", "email", (("id", 1),), "email", "exact", False),
                             ("people", "phone", (("id", 1),), "phone", "exact", True)}
    assert [t.candidates for t in result.timings if t.where == "people"] == [1]


def test_excluded_tables_and_columns_are_not_swept(db_url):
    populate(db_url)
    store = StoreSpec(
        "app", url=db_url, exclude_tables=["log*", "keyless"], exclude_columns=["users.email", "*.avatar"]
    )
    got = found(sweep([store], NEEDLES))
    assert got == {e for e in EXPECTED if e[0] not in ("logs", "keyless") and e[1] not in ("email", "avatar")}
    only = StoreSpec("app", url=db_url, include_tables=["contacts"])
    assert {e[0] for e in found(sweep([only], NEEDLES))} == {"contacts"}


def test_many_subjects_give_the_same_hits_as_one_by_one(db_url):
    rng = random.Random(5)
    subjects = [subject(i, rng) for i in range(50)]
    engine = sa.create_engine(db_url)
    table = sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("a", sa.Text),
        sa.Column("b", sa.Text),
    )
    table.create(engine)
    rows = [{"id": i, "a": f"filler {i}", "b": None} for i in range(400)]
    free = rng.sample(range(400), 300)
    planted = 0
    for n, (_, needles) in enumerate(subjects):
        name, email, username, phone = (x.value for x in needles)
        inside = [
            email,
            email.upper(),
            urllib.parse.quote(email),
            base64.b64encode(("." * (n % 3) + username).encode()).decode(),
        ]
        whole = [hashlib.md5(name.strip().lower().encode()).hexdigest()]
        for value in inside:
            rows[free.pop()]["b"] = f"before {value} after"
        rows[free.pop()]["a"] = whole[0]
        # the phone number (weak) beside the subject's own canary, in the row of the last one
        beside = next(r for r in rows if r["b"] == f"before {inside[-1]} after")
        beside["a"] = phone
        planted += len(inside) + len(whole) + 1
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()
    store = [StoreSpec("app", url=db_url)]
    everything = [n for _, needles in subjects for n in needles]
    together = sweep(store, everything)
    apart = set()
    for _, needles in subjects:
        apart |= {
            (h.row_key["id"], h.column_or_line, h.subject_id, h.field, h.form)
            for h in sweep(store, needles).hits
        }
    assert {
        (h.row_key["id"], h.column_or_line, h.subject_id, h.field, h.form) for h in together.hits
    } == apart
    assert len(together.hits) == planted


def test_every_form_inside_json_and_binary_columns(db_url):
    """JSON, bytea/BLOB and plain text take different predicate paths (on PostgreSQL a regular
    expression gate before the exact tests on converted values; anchored LIKE/GLOB elsewhere):
    each must still see every in-text form, in every letter case and base64 alignment."""
    docs = sa.Table(
        "docs",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("doc", JSONB),
        sa.Column("raw", sa.LargeBinary),
        sa.Column("note", sa.Text),
    )
    values = {
        "upper": EMAIL.upper(),
        "title": NAME.title(),  # 'Ada Lovelace Pcqz…': the marker's first letter capitalised
        "url": urllib.parse.quote_plus(NAME),
        **{f"b64-{n}": base64.b64encode(("." * n + USERNAME).encode()).decode() for n in range(3)},
    }
    want_form = {"upper": "casefold", "title": "casefold", "url": "urlencoded"}
    # One value in one column per row: a row is a candidate as a whole, so a value present in
    # another column of the same row would hide a predicate that misses it.
    rows, expected = [], set()
    for label, value in values.items():
        field = "email" if label == "upper" else "username" if label.startswith("b64") else "full_name"
        form = want_form.get(label, "base64")
        for column, stored in (
            ("doc", {"k": f"x {value} y"}),
            ("raw", f"x {value} y".encode()),
            ("note", value),
        ):
            i = len(rows) + 1
            rows.append({"id": i, "doc": None, "raw": None, "note": None, column: stored})
            expected.add(("docs", column, (("id", i),), field, form, False))
    # Whole values kept as a JSON document of their own: a string scalar (quoted in the text)
    # and a digest.
    digest = hashlib.md5(EMAIL.encode()).hexdigest()
    for doc, hit in ((digest, ("email", "md5", False)),):
        i = len(rows) + 1
        rows.append({"id": i, "doc": doc, "raw": None, "note": None})
        expected.add(("docs", "doc", (("id", i),), *hit))
    engine = sa.create_engine(db_url)
    docs.create(engine)
    with engine.begin() as conn:
        conn.execute(docs.insert(), rows)
    engine.dispose()
    assert found(sweep([StoreSpec("app", url=db_url)], NEEDLES)) == expected


def test_anchor_is_a_rare_suffix_of_the_pattern():
    assert _anchor(LEGACY_MARKER, True) == "qz"  # q and z are the rarest letters in either case
    assert _anchor(LITERAL, True) == LITERAL  # starts with its rarest character already
    for core in base64_cores(LEGACY_MARKER.encode()):
        anchor = _anchor(core, False)
        assert core.endswith(anchor) and len(anchor) >= 2
    assert _anchor("ab", False) == "ab"


def test_a_utf16_sqlite_database_gives_the_same_hits(tmp_path):
    """Whole values are compared only at their stored byte length; a UTF-16 database stores
    text as two bytes a character, and must not make a digest invisible."""
    import sqlite3

    path = tmp_path / "utf16.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA encoding = 'UTF-16le'")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    digest = hashlib.sha256(EMAIL.encode()).hexdigest()
    md5 = hashlib.md5(EMAIL.encode()).hexdigest()
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, md5), (2, digest), (3, f"x {EMAIL.upper()} y")])
    conn.commit()
    assert conn.execute("PRAGMA encoding").fetchone()[0].startswith("UTF-16")
    conn.close()
    got = found(sweep([StoreSpec("app", url=f"sqlite:///{path}")], NEEDLES))
    assert got == {
        ("t", "v", (("id", 1),), "email", "md5", False),
        ("t", "v", (("id", 2),), "email", "sha256", False),
        ("t", "v", (("id", 3),), "email", "casefold", False),
    }


def test_a_latin1_postgres_database_gives_the_same_hits(pg_url):
    """In a single-byte database a non-ASCII value takes one byte a character, fewer than its
    UTF-8 form: a weak one beside the subject's canary is still named (and alone, as anywhere,
    it is not looked for)."""
    name = "sweep_latin1_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
                             "TEMPLATE template0")
    admin.dispose()
    url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    team = Needle("s001", "department", "Büro Zürich Nord", weak=True)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id integer PRIMARY KEY, v text, e text)")
        conn.execute(sa.text("INSERT INTO t VALUES (1, 'Büro Zürich Nord', :e), (2, 'Büro Basel', NULL), "
                             "(3, 'Büro Zürich Nord', NULL)"), {"e": EMAIL})
        assert conn.exec_driver_sql("SELECT octet_length(v) FROM t WHERE id = 1").scalar() == len(team.value)
    engine.dispose()
    got = found(sweep([StoreSpec("app", url=url)], [*NEEDLES, team]))
    assert got == {("t", "v", (("id", 1),), "department", "exact", True), ("t", "e", (("id", 1),), "email", "exact", False)}


def test_a_case_insensitive_gate_never_needs_an_ascii_letter_a_non_ascii_one_folds_to(pg_url):
    """PostgreSQL's ILIKE lower-cases both sides, and the Kelvin sign lower-cases to 'k': a value
    written with it matches 'kilo' in any case without holding 'k' or 'K'. The cheap gate in front
    of the ILIKE must not be that letter (SQLite's LIKE folds ASCII only, so this is PostgreSQL's)."""
    # Case mapping follows the database's LC_CTYPE: the throwaway cluster's C folds ASCII only.
    name = "sweep_ctype_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name} LC_CTYPE 'C.UTF-8' LC_COLLATE 'C.UTF-8' "
                                 "TEMPLATE template0")
    except sa.exc.DBAPIError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"this PostgreSQL server has no C.UTF-8 locale: {e.orig}")
    finally:
        admin.dispose()
    url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    value = Needle("s001", "company", "Kilo", weak=False)  # no canary: searched for on its own
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id integer PRIMARY KEY, v text)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1, 'team \u212ailo north'), (2, 'team lima')")
        assert conn.exec_driver_sql("SELECT v ILIKE '%%kilo%%' FROM t WHERE id = 1").scalar()
    engine.dispose()
    got = found(sweep([StoreSpec("app", url=url)], [value], forms=["exact", "casefold"]))
    assert got == {("t", "v", (("id", 1),), "company", "casefold", False)}


def test_misspelt_sqlite_path_is_a_store_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "nope.db"
    with pytest.raises(StoreError, match="store 'app'.*nope.db"):
        sweep([StoreSpec("app", url=f"sqlite:///{missing}")], NEEDLES)
    assert not missing.exists()


def test_unreachable_postgres_names_store_and_hides_password(pg_url):
    port = sa.make_url(pg_url).port
    url = f"postgresql+psycopg://auditor:s3cr3t-pw@127.0.0.1:{port}/no_such_db"
    with pytest.raises(StoreError) as info:
        sweep([StoreSpec("warehouse", url=url)], NEEDLES)
    message = str(info.value)
    assert "warehouse" in message and "auditor:***@127.0.0.1" in message and "s3cr3t-pw" not in message
    with pytest.raises(StoreError, match="store 'typo'.*postgresq://u:\\*\\*\\*@"):
        sweep([StoreSpec("typo", url="postgresq://u:s3cr3t-pw@127.0.0.1/x")], NEEDLES)


@pytest.mark.parametrize("forms", [("exact",), ALL_FORMS])
def test_a_column_test_built_once_per_shape_is_the_test_built_for_each_column(db_url, monkeypatch, forms):
    """The sweep renders one test per shape of column (kind and type) and puts each column in;
    every table's statement must say what the one built column by column says (the same text but
    for grouping parentheses) and return the same rows."""
    from privacy_checks.observe.stores import sql
    from privacy_checks.observe.stores.base import Plan, SweepResult

    populate(db_url)
    plan = Plan(NEEDLES, forms)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        tables = sql._tables(conn, StoreSpec("app", url=db_url), SweepResult())
        conn.rollback()

        def run() -> tuple[list[str], list[list[tuple]]]:
            queries = [sql.sweep_query(conn.dialect, plan, t, t.columns) for t in tables]
            texts = [str(q.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})) for q in queries]
            rows = [sorted(tuple(map(repr, r)) for r in conn.execute(q)) for q in queries]
            conn.rollback()
            return texts, rows

        cached, cached_rows = run()
        monkeypatch.setattr(sql, "_column_test", sql._predicate)
        built, built_rows = run()
    engine.dispose()
    assert len(tables) >= 4 and sum(len(t.columns) for t in tables) > len(tables)  # shapes shared
    assert cached_rows == built_rows and any(cached_rows)

    def bare(q: str) -> str:
        return q.replace("(", "").replace(")", "")

    assert [bare(q) for q in cached] == [bare(q) for q in built]


# --- traps real PostgreSQL databases set (issue 22) ---------------------------------------------


def test_the_sweep_gets_the_parallel_scan_the_floor_gets(pg_url):
    """The planner expects a third of the rows to pass each strpos() > 0 and prices moving them out
    of parallel workers above a serial scan; the sweep's session prices that at nothing, so the
    same table is read by the workers a plain count(*) gets."""
    from privacy_checks.observe.stores.base import Plan, SweepResult
    from privacy_checks.observe.stores.sql import _tables, sweep_query, sweep_session

    url = _fresh_pg_database(pg_url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE big (id integer PRIMARY KEY, a text, b text)")
        # ~40 MB: well above min_parallel_table_scan_size (8 MB), where workers pay for themselves
        conn.exec_driver_sql("INSERT INTO big SELECT i, md5(i::text) || ' order shipped to the warehouse', "
                             "'customer ' || i FROM generate_series(1, 400000) i")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE big")
    plan = Plan(NEEDLES, ("exact",))
    with engine.connect() as conn:
        (table,) = _tables(conn, StoreSpec("app", url=url), SweepResult())
        conn.rollback()
        sql = str(sweep_query(conn.dialect, plan, table, table.columns).compile(
            dialect=conn.dialect, compile_kwargs={"literal_binds": True}))

        def explain(tuned: bool) -> str:
            with conn.begin():
                if tuned:
                    sweep_session(conn)
                return "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql.replace("%", "%%")))

        assert "Workers Planned" in explain(True), explain(True)
        count = "\n".join(r[0] for r in conn.exec_driver_sql(
            "EXPLAIN SELECT count(*) FROM big WHERE length(coalesce(a, '')) + length(coalesce(b, '')) < 0"))
        conn.rollback()
        assert "Workers Planned" in count  # what the floor gets
        assert "Workers Planned" not in explain(False)  # the trap, untuned
    engine.dispose()


def test_a_column_with_a_nondeterministic_collation_is_swept(pg_url):
    """strpos() and LIKE raise an error on a non-deterministic (ICU) collation; the sweep
    compares under COLLATE "C" and must see the column like any other."""
    url = _fresh_pg_database(pg_url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        try:
            conn.exec_driver_sql("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', "
                                 "deterministic = false)")
        except sa.exc.DBAPIError as e:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"this PostgreSQL server has no ICU: {e.orig}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id integer PRIMARY KEY, v text COLLATE ci, w varchar(40) COLLATE ci)")
        conn.execute(sa.text("INSERT INTO t VALUES (1, :a, NULL), (2, :b, NULL), (3, NULL, :c)"),
                     {"a": EMAIL.upper(), "b": f"see {B64_TOKEN}", "c": hashlib.md5(EMAIL.encode()).hexdigest()})
        # the trap itself: a substring search under this collation is an error
        with pytest.raises(sa.exc.DBAPIError, match="nondeterministic"):
            with conn.begin_nested():
                conn.exec_driver_sql("SELECT strpos(v, 'x') FROM t")
    engine.dispose()
    result = sweep([StoreSpec("app", url=url)], NEEDLES)
    assert not result.unswept
    assert found(result) == {
        ("t", "v", (("id", 1),), "email", "casefold", False),
        ("t", "v", (("id", 2),), "email", "base64", False),
        ("t", "w", (("id", 3),), "email", "md5", False),
    }


def test_json_that_escapes_the_canary_is_read_unescaped(pg_url):
    """PostgreSQL's json type keeps its input as written: a writer that escapes characters
    (\\u0071 for q) hides the literal from a substring test on the text; jsonb does not."""
    url = _fresh_pg_database(pg_url)
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in CANARY)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE j (id integer PRIMARY KEY, doc json)")
        conn.execute(sa.text("INSERT INTO j VALUES (1, CAST(:a AS json)), (2, CAST(:b AS json)), (3, CAST(:c AS json))"),
                     {"a": '{"name": "Ada Lovelace ' + escaped + '"}',
                      "b": '{"note": "nul \\u0000 and ' + escaped + '"}', "c": '{"name": "nobody"}'})
        assert CANARY not in conn.exec_driver_sql("SELECT doc::text FROM j WHERE id = 1").scalar()
    engine.dispose()
    assert found(sweep([StoreSpec("app", url=url)], NEEDLES + canary_needles("s001", [CANARY]))) == {
        ("j", "doc", (("id", 1),), "full_name", "exact", False),
        ("j", "doc", (("id", 2),), "canary", "token", False),
    }


def test_table_without_permission_is_listed_unswept(pg_url):
    url = _fresh_pg_database(pg_url)
    populate(url)
    role = "reader_" + uuid.uuid4().hex[:8]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT SELECT ON users, contacts, keyless TO {role}")
    engine.dispose()
    result = sweep(
        [StoreSpec("app", url=sa.make_url(url).set(username=role).render_as_string(False))], NEEDLES
    )
    assert [(u.where, "permission denied" in u.reason) for u in result.unswept] == [("logs", True)]
    assert found(result) == {e for e in EXPECTED if e[0] != "logs"}


def test_sweep_is_read_only(db_url):
    populate(db_url)
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(logs)).scalar_one()
    sweep([StoreSpec("app", url=db_url)], NEEDLES)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(logs)).scalar_one() == before
    engine.dispose()


# --- file stores -------------------------------------------------------------------------------


def test_plain_and_gzip_logs(tmp_path):
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    (logs_dir / "app.log").write_text(
        f"boot\nuser {USERNAME} signed in\nidle\naudit {EMAIL.upper()} token={B64_TOKEN}\n"
    )
    with gzip.open(logs_dir / "app.log.1.gz", "wt") as f:
        for i in range(1000):
            f.write(f"line {i}\n")
        f.write(f"GET /u?name={urllib.parse.quote(NAME)} from {PHONE}\n")
    result = sweep(
        [StoreSpec("logs", files=[str(logs_dir / "app.log*"), str(tmp_path / "later/*.log")])], NEEDLES
    )
    got = {
        (os.path.basename(h.table_or_path), h.column_or_line, h.field, h.form, h.weak) for h in result.hits
    }
    assert got == {
        ("app.log", 2, "username", "exact", False),
        ("app.log", 4, "email", "casefold", False),
        ("app.log", 4, "email", "base64", False),
        ("app.log.1.gz", 1001, "full_name", "urlencoded", False),
        ("app.log.1.gz", 1001, "phone", "exact", True),
    }
    assert all(h.location_kind == "file" and h.row_key is None for h in result.hits)
    assert result.empty_globs == [("logs", str(tmp_path / "later/*.log"))]
    assert not result.unswept


def test_unreadable_files_are_listed(tmp_path):
    (tmp_path / "b.log").symlink_to(tmp_path / "gone")
    (tmp_path / "c.log.gz").write_bytes(b"\x1f\x8b" + b"not gzip at all")
    (tmp_path / "d.log").write_text(f"ok {EMAIL}\n")
    result = sweep([StoreSpec("logs", files=[str(tmp_path / "*.log*")])], NEEDLES)
    assert sorted(os.path.basename(u.where) for u in result.unswept) == ["b.log", "c.log.gz"]
    assert [(os.path.basename(h.table_or_path), h.form) for h in result.hits] == [("d.log", "exact")]


def test_a_file_store_whose_globs_match_no_file_is_unswept_not_clean(tmp_path):
    # A log store is usually expect_subject: false, so no positive control would notice that its
    # globs match nothing: "no hits" there must not read as "no trace left".
    (tmp_path / "logs").mkdir()
    result = sweep([StoreSpec("logs", files=[str(tmp_path / "log/*.log"), str(tmp_path / "logs/*.log.gz")])],
                   NEEDLES)
    assert [(u.store, u.where) for u in result.unswept] == [
        ("logs", f"{tmp_path / 'log/*.log'}, {tmp_path / 'logs/*.log.gz'}")]
    assert result.unswept[0].reason.startswith("no file matches the store's globs: nothing was read")


def test_a_database_whose_table_filters_leave_no_table_is_unswept_not_clean(tmp_path):
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users (email) VALUES (?)", (EMAIL,))
    conn.commit()
    conn.close()
    result = sweep([StoreSpec("app", url=f"sqlite:///{path}", exclude_tables=["users"])], NEEDLES)
    assert not result.hits
    assert [(u.store, u.where) for u in result.unswept] == [("app", "every table")]
    assert result.unswept[0].reason.startswith("no table to sweep (schemas: all but the system ones; "
                                               "include_tables: *; exclude_tables: users): nothing was read")
    misspelt = sweep([StoreSpec("app", url=f"sqlite:///{path}", include_tables=["user"])], NEEDLES)
    assert [(u.where, u.reason) for u in misspelt.unswept] == [("include_tables user", "matches no table in schema(s) main")]
    assert not sweep([StoreSpec("app", url=f"sqlite:///{path}", include_tables=["user*"])], NEEDLES).unswept


@pytest.mark.parametrize("pattern", ["logs/**/*.log", "logs/*/*.log", "logs", "logs/**"])
def test_a_link_to_a_directory_is_unswept_whatever_the_glob_that_reaches_it(tmp_path, pattern):
    # Links to directories are not followed (one may lead back up the tree); what is behind one
    # is then unread, and must be said to be, or a log kept there sweeps clean.
    (tmp_path / "logs" / "real").mkdir(parents=True)
    (tmp_path / "logs" / "real" / "a.log").write_text("nothing here\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.log").write_text(f"mail {EMAIL}\n")
    (tmp_path / "logs" / "link").symlink_to(tmp_path / "elsewhere")
    result = sweep([StoreSpec("logs", files=[str(tmp_path / pattern)])], NEEDLES)
    assert [(u.where, u.reason) for u in result.unswept] == [
        (str(tmp_path / "logs" / "link"), "is a link to a directory (not followed)")]


def test_a_directory_that_cannot_be_listed_is_unswept_not_skipped(tmp_path, monkeypatch):
    # os.walk drops a directory it cannot list unless asked; a sweep account without the right to
    # list one (EACCES) would then sweep clean what is in it. The tests run as root, who may list
    # anything, so the error here is another the same call gives: a path longer than PATH_MAX.
    monkeypatch.chdir(tmp_path)
    os.mkdir("dumps")
    os.chdir("dumps")
    for _ in range(18):  # 18 x 251 characters: past Linux's 4,096, built one relative step at a time
        os.mkdir("d" * 250)
        os.chdir("d" * 250)
    with open("deep.log", "w") as f:
        f.write(f"mail {EMAIL}\n")
    os.chdir(tmp_path)
    result = sweep([StoreSpec("dumps", files=[str(tmp_path / "dumps")])], NEEDLES)
    assert [u.reason for u in result.unswept] == ["cannot list the directory: OSError: File name too long"]
    assert result.unswept[0].where.startswith(str(tmp_path / "dumps" / ("d" * 250)))


def test_logs_compressed_with_bzip2_or_xz_are_read_through_and_other_compressions_are_unswept(tmp_path):
    # logrotate's compresscmd may be bzip2 or xz: read as raw bytes such a log held no canary and
    # swept clean. A compression the sweep cannot read (zstd, here by its magic number) is unswept.
    import bz2
    import lzma

    text = "line\n" * 100 + f"mail {EMAIL}\n"
    (tmp_path / "app.log.2.bz2").write_bytes(bz2.compress(text.encode()))
    (tmp_path / "app.log.3.xz").write_bytes(lzma.compress(text.encode()))
    (tmp_path / "app.log.4.zst").write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(64))
    (tmp_path / "app.log.5.xz").write_bytes(lzma.compress(b"line\n" * 100)[:-20])  # cut short
    result = sweep([StoreSpec("logs", files=[str(tmp_path / "app.log*")])], NEEDLES)
    assert sorted((os.path.basename(h.table_or_path), h.column_or_line) for h in result.hits) == [
        ("app.log.2.bz2", 101), ("app.log.3.xz", 101)]
    assert sorted((os.path.basename(u.where), u.reason.split(":")[0]) for u in result.unswept) == [
        ("app.log.4.zst", "compressed with zstd, which the sweep cannot read"), ("app.log.5.xz", "unreadable")]


def test_a_listed_schema_or_include_tables_entry_that_matches_nothing_is_unswept(db_url):
    # Each entry says "sweep this": one that names nothing (a typo, a table since renamed) left
    # that data unread while the rest of the store swept clean.
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
        conn.exec_driver_sql("CREATE TABLE contacts (id INTEGER PRIMARY KEY, email TEXT)")
        default = sa.inspect(conn).default_schema_name
    engine.dispose()
    store = StoreSpec("app", url=db_url, schemas=[default, "audti"], include_tables=["users", "contact_archive", "cont*"])
    result = sweep([store], NEEDLES)
    assert sorted(u.where for u in result.unswept) == ["include_tables contact_archive", "schema audti"]
    assert not sweep([StoreSpec("app", url=db_url, include_tables=["users", "cont*"])], NEEDLES).unswept


def test_a_fifo_among_the_logs_is_unswept_not_waited_on(tmp_path):
    # Opening a FIFO waits for a writer that may never come: the sweep hung for good.
    os.mkfifo(tmp_path / "app.log.pipe")
    (tmp_path / "app.log").write_text(f"mail {EMAIL}\n")
    result = sweep([StoreSpec("logs", files=[str(tmp_path / "app.log*")])], NEEDLES)
    assert [(os.path.basename(u.where), u.reason) for u in result.unswept] == [
        ("app.log.pipe", "not a regular file (a FIFO): not read")]
    assert [os.path.basename(h.table_or_path) for h in result.hits] == ["app.log"]


def corrupt_deflate(text: str) -> bytes:
    """A gzip file whose header is sound and whose compressed data is not: zlib, not the gzip
    module, notices (``zlib.error``, which is not an OSError)."""
    good = gzip.compress(text.encode())
    return good[:10] + bytes(b ^ 0xFF for b in good[10:40]) + good[40:]


def test_a_gzip_file_with_corrupt_compressed_data_is_unswept_not_a_crash(tmp_path):
    (tmp_path / "a.log.1.gz").write_bytes(corrupt_deflate("line\n" * 1000 + f"mail {EMAIL}\n"))
    (tmp_path / "b.log").write_text(f"ok {EMAIL}\n")
    result = sweep([StoreSpec("logs", files=[str(tmp_path / "*.log*")])], NEEDLES)
    assert [(os.path.basename(u.where), u.reason.split(":")[0]) for u in result.unswept] == [("a.log.1.gz", "unreadable")]
    assert [os.path.basename(h.table_or_path) for h in result.hits] == ["b.log"]


def test_directories_a_glob_matches_are_walked(tmp_path):
    """Issue 14 (14): "logs/**" matches directories too; each is walked, not reported unswept,
    and a file both the glob and a walk reach is swept once. A link to a directory is not
    followed (it may lead back up the tree) and is listed."""
    (tmp_path / "a.log" / "rotated" / "old").mkdir(parents=True)  # a directory named like a log
    (tmp_path / "a.log" / "rotated" / "old" / "x.txt").write_text(f"kept {EMAIL}\n")
    (tmp_path / "top.txt").write_text(f"top {NAME}\n")
    (tmp_path / "loop").symlink_to(tmp_path, target_is_directory=True)
    result = sweep([StoreSpec("logs", files=[str(tmp_path / "**")])], NEEDLES)
    got = sorted((os.path.relpath(h.table_or_path, tmp_path), h.field) for h in result.hits)
    assert got == [("a.log/rotated/old/x.txt", "email"), ("top.txt", "full_name")]
    assert [(os.path.basename(u.where), u.reason) for u in result.unswept] == [
        ("loop", "is a link to a directory (not followed)")
    ]
    walked = sweep([StoreSpec("logs", files=[str(tmp_path / "*.log")])], NEEDLES)
    assert [os.path.relpath(h.table_or_path, tmp_path) for h in walked.hits] == ["a.log/rotated/old/x.txt"]
    assert not walked.unswept


def test_very_long_line_is_read_in_pieces(tmp_path):
    path = tmp_path / "export.json"
    filler = "x" * ((1 << 20) - 10)  # the value straddles the first piece boundary
    path.write_text(filler + f" {EMAIL} " + "y" * 100 + "\n" + f"{NAME}\n")
    result = sweep([StoreSpec("dump", files=[str(path)])], NEEDLES)
    assert sorted((h.column_or_line, h.field) for h in result.hits) == [(1, "email"), (2, "full_name")]


def test_a_weak_value_is_named_only_where_a_canary_proves_the_subject():
    from privacy_checks.observe.stores.base import Hit, corroborated

    def hit(table, key, field, weak):
        return Hit("app", "table", table, "c", key, "s001", field, "exact", weak, "")

    strong = hit("users", {"id": 1}, "email", False)
    beside = hit("users", {"id": 1}, "phone", True)
    alone = hit("users", {"id": 2}, "phone", True)
    other_subject = Hit("app", "table", "users", "c", {"id": 1}, "s002", "phone", "exact", True, "")
    assert corroborated([strong, beside, alone, other_subject]) == [beside]


# --- full-text indexes (issue 14 point 8) -----------------------------------------------------


@pytest.mark.parametrize("module", ["fts4", "fts5"])
def test_a_full_text_index_is_read_through_its_vocabulary(tmp_path, module):
    """A SQLite FTS index keeps its terms in shadow tables as prefix-compressed BLOBs (a canary
    right after another loses its literal there) and keeps deleted rows until segments merge.
    The sweep reads the index's own vocabulary: every term it still holds, any canary among them
    a bare token, with the document for FTS5; a document deleted from the index is gone."""
    path = tmp_path / "search.db"
    other = make_canary(random.Random("other"))
    conn = sqlite3.connect(path)
    if module == "fts5":
        # external content: the application deletes documents, and must tell the index itself
        conn.executescript("CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT);"
                           "CREATE VIRTUAL TABLE idx USING fts5(title, content='docs', content_rowid='id');")
        rows = [(1, f"Bob {other}"), (2, NAME), (3, "Cy plain")]
        conn.executemany("INSERT INTO docs VALUES (?, ?)", rows)
        conn.executemany("INSERT INTO idx (rowid, title) VALUES (?, ?)", rows)
        conn.execute("DELETE FROM docs WHERE id = 2")  # the index is not told: it still holds the terms
        conn.execute("INSERT INTO idx (idx, rowid, title) VALUES ('delete', 1, ?)", (f"Bob {other}",))
        conn.execute("DELETE FROM docs WHERE id = 1")  # told: gone from the vocabulary, not yet from the blobs
    else:
        conn.execute("CREATE VIRTUAL TABLE idx USING fts4(title)")
        conn.executemany("INSERT INTO idx (docid, title) VALUES (?, ?)", [(1, f"Bob {other}"), (2, NAME)])
        conn.execute("DELETE FROM idx WHERE docid = 1")
    conn.commit()
    conn.close()
    needles = NEEDLES + canary_needles("s001", [CANARY]) + canary_needles("s002", [other])
    result = sweep([StoreSpec("search", url=f"sqlite:///{path}")], needles)
    assert not result.unswept
    got = {(h.table_or_path, h.column_or_line, tuple((h.row_key or {}).items()) or None, h.subject_id, h.field, h.form)
           for h in result.hits}
    key = (("rowid", 2),) if module == "fts5" else None
    want = {("idx", "title (index term)", key, "s001", "canary", "token")}
    if module == "fts4":  # its own content table holds the document itself
        want.add(("idx_content", "c0title", (("docid", 2),), "s001", "full_name", "exact"))
    assert got == want


def test_a_tsvector_keeps_the_canary_as_a_lexeme(pg_url):
    """A tsvector holds lexemes, lower-cased and stemmed; the canary has digits, so PostgreSQL's
    parser takes it as one 'numword' and keeps it whole: found as a bare token."""
    url = _fresh_pg_database(pg_url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE docs (id integer PRIMARY KEY, tsv tsvector)")
        conn.execute(sa.text("INSERT INTO docs VALUES (1, to_tsvector('english', :a)), (2, to_tsvector('english', :b))"),
                     {"a": NAME.upper(), "b": "Grace Hopper"})
        text = conn.exec_driver_sql("SELECT tsv::text FROM docs WHERE id = 1").scalar()
        assert CANARY in text and "lovelac" in text  # the name's words are stemmed, the canary is not
    engine.dispose()
    result = sweep([StoreSpec("app", url=url)], NEEDLES + canary_needles("s001", [CANARY]))
    assert found(result) == {("docs", "tsv", (("id", 1),), "canary", "token", False)}
