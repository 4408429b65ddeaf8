"""Data-lake files (Parquet, CSV, JSON Lines, plain or gzip) swept by DuckDB, predicates in its scan."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
import urllib.parse

import duckdb
import pytest

from privacy_checks.observe.forms import MARKER, Needle
from privacy_checks.observe.stores import StoreSpec, sweep


def person(tag: str = "s1"):
    canary = MARKER + secrets.choice("abcdefghijklmnopqrstuvwxyz") + "".join(
        secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(9))
    email, name = f"ada.{canary}@example.com", f"Ada Lovelace {canary}"
    return email, name, [Needle(tag, "email", email), Needle(tag, "full_name", name),
                         Needle(tag, "phone", "+1-555-0142", weak=True)]


def write_parquet(path, rows: int, plants: dict[int, dict[str, str]]) -> None:
    """``rows`` rows of filler with ``plants`` {row number (1-based): {column: value}} put in."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id BIGINT, email VARCHAR, note VARCHAR, payload STRUCT(q VARCHAR, n INTEGER), "
                "score DOUBLE)")
    con.execute(f"INSERT INTO t SELECT i, 'user' || i || '@example.org', 'note ' || i, {{'q': 'page ' || i, 'n': i}}, "
                f"i * 0.5 FROM range(1, {rows + 1}) r(i)")
    for row, values in plants.items():
        for column, value in values.items():
            if column == "q":
                con.execute("UPDATE t SET payload = {'q': ?, 'n': 0} WHERE id = ?", [value, row])
            else:
                con.execute(f"UPDATE t SET {column} = ? WHERE id = ?", [value, row])
    con.execute(f"COPY (SELECT * FROM t ORDER BY id) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 10000)")
    con.close()


def test_parquet_csv_and_json_lines_plain_or_gzip_name_file_row_and_column(tmp_path):
    email, name, needles = person()
    write_parquet(tmp_path / "users.parquet", 50_000, {
        7: {"email": email},
        20_001: {"note": f"call {name.upper()}"},
        30_000: {"q": f"/search?q={urllib.parse.quote_plus(name)}"},
        49_999: {"note": hashlib.md5(email.encode()).hexdigest()},
    })
    (tmp_path / "events.csv").write_text(f"id,who,token\n1,nobody,x\n2,+1-555-0142,{base64.b64encode(email.encode()).decode()}\n")
    with gzip.open(tmp_path / "audit.jsonl.gz", "wt") as f:
        for i in range(5):
            f.write(json.dumps({"i": i, "actor": {"name": name if i == 3 else "x"}}) + "\n")
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "*")])], needles)
    got = {(h.table_or_path.rsplit("/", 1)[1], h.row_key["row"], h.column_or_line, h.field, h.form, h.weak)
           for h in result.hits}
    assert got == {
        ("users.parquet", 7, "email", "email", "exact", False),
        ("users.parquet", 20_001, "note", "full_name", "casefold", False),
        ("users.parquet", 30_000, "payload", "full_name", "urlencoded", False),
        ("users.parquet", 49_999, "note", "email", "md5", False),
        ("events.csv", 2, "who", "phone", "exact", True),
        ("events.csv", 2, "token", "email", "base64", False),
        ("audit.jsonl.gz", 4, "actor", "full_name", "exact", False),
    }
    hit = next(h for h in result.hits if h.row_key["row"] == 7)
    assert hit.place() == f"lake: file {tmp_path / 'users.parquet'}, row 7, column email"
    # only candidate rows came back from DuckDB: the four planted ones, not 50,000
    parquet = next(t for t in result.timings if t.where and t.where.endswith("users.parquet"))
    assert parquet.candidates == 4
    assert result.unswept == [] and result.examined["lake"]["files"] == 3


def test_excluded_columns_are_not_read(tmp_path):
    email, _, needles = person()
    write_parquet(tmp_path / "u.parquet", 10, {2: {"email": email, "note": email}})
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "*.parquet")], exclude_columns=["note"])], needles)
    assert [h.column_or_line for h in result.hits] == ["email"]


def test_an_unreadable_file_is_unswept_and_an_empty_glob_is_reported(tmp_path):
    email, _, needles = person()
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "ok.csv").write_text(f"a\n{email}\n")
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "*"), str(tmp_path / "none" / "*.parquet")])], needles)
    assert [h.table_or_path.rsplit("/", 1)[1] for h in result.hits] == ["ok.csv"]
    assert [(u.where.rsplit("/", 1)[1], u.reason.split(":")[0]) for u in result.unswept] == [
        ("broken.parquet", "unreadable as parquet")]
    assert result.empty_globs == [("lake", str(tmp_path / "none" / "*.parquet"))]


def test_a_lake_whose_globs_match_no_file_is_unswept_not_clean(tmp_path):
    _, _, needles = person()
    (tmp_path / "exports").mkdir()
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "export/*.parquet")])], needles)
    assert [(u.store, u.where) for u in result.unswept] == [("lake", str(tmp_path / "export/*.parquet"))]
    assert result.unswept[0].reason.startswith("no file matches the store's globs: nothing was read")


def test_a_value_in_a_column_name_is_found_as_row_0(tmp_path):
    # DuckDB takes a CSV's first line for its header when every column is text (the sweep reads
    # CSV as text), so a headerless export's first record became column names, never searched;
    # a JSON object keyed by an email makes that email a column's name too.
    email, name, needles = person()
    (tmp_path / "export.csv").write_text(f"{email},{name}\nbob@example.org,Bob Smith\n")
    (tmp_path / "by_mail.jsonl").write_text(json.dumps({email: {"plan": "pro"}}) + "\n")
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "*")])], needles)
    assert not result.unswept
    assert {(h.table_or_path.rsplit("/", 1)[1], h.row_key["row"], h.field) for h in result.hits if not h.weak} == {
        ("export.csv", 0, "email"), ("export.csv", 0, "full_name"), ("by_mail.jsonl", 0, "email")}


def test_a_json_lines_key_first_seen_after_duckdbs_schema_sample_is_still_read(tmp_path):
    # DuckDB infers a JSON file's columns from its first 20,480 records by default and drops,
    # silently, every top-level key first seen later (duckdb/duckdb#25826): the sweep would read
    # the file and find nothing, although the subject's email is there.
    email, _, needles = person()
    with open(tmp_path / "events.jsonl", "w") as f:
        for i in range(25_000):
            f.write(json.dumps({"i": i, "kind": "view"}) + "\n")
        f.write(json.dumps({"i": 25_000, "kind": "signup", "contact": email}) + "\n")
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "events.jsonl")])], needles)
    assert not result.unswept
    assert {(h.row_key["row"], h.column_or_line, h.field) for h in result.hits} == {(25_001, "contact", "email")}


# -- typed values (issue 15): numbers, dates and instants in their own column types ---------------

def typed_subjects():
    from privacy_checks.subjects import SubjectFactory

    factory = SubjectFactory(seed="lake-typed", nonce="n0", fields=["full_name", "card_number", "date_of_birth", "moment"],
                             extra_fields=["loyalty", "total"],
                             strategies={"loyalty": {"strategy": "integer"}, "total": {"strategy": "amount"}})
    return factory.build("test_lake_typed"), factory.build("test_lake_typed")


def typed_row(s) -> dict:
    from datetime import date
    from decimal import Decimal

    from privacy_checks.observe.typed import parse_moment

    m = parse_moment(s.fields["moment"])
    card, total = s.fields["card_number"], Decimal(s.fields["total"])
    return dict(card=int(card), card_dec=Decimal(int(card)), born=date.fromisoformat(s.fields["date_of_birth"]),
                login_at=m.replace(tzinfo=None), at_tz=m, at_ms=m.replace(tzinfo=None), at_epoch_ms=int(m.timestamp() * 1000),
                tod=m.time().replace(tzinfo=None), loyalty=int(s.fields["loyalty"]), total=total, total_d=float(total),
                total_f=float(total), card_text=card[:4] + "-" + card[4:8] + "-" + card[8:12] + "-" + card[12:],
                born_text=date.fromisoformat(s.fields["date_of_birth"]).strftime("%m/%d/%Y"))


TYPED_COLUMNS = ("id BIGINT, name VARCHAR, last4 VARCHAR, card BIGINT, card_dec DECIMAL(20,0), born DATE, login_at TIMESTAMP, "
                 "at_tz TIMESTAMPTZ, at_ms TIMESTAMP_MS, at_epoch_ms BIGINT, tod TIME, loyalty INTEGER, "
                 "total DECIMAL(10,2), total_d DOUBLE, total_f FLOAT, card_text VARCHAR, born_text VARCHAR, "
                 "active BOOLEAN")


def write_typed_parquet(path, plants: dict[int, dict], without: tuple[str, ...] = ()) -> None:
    """1,000 rows of filler (numbers, dates and instants of nobody) with ``plants`` put in;
    ``without``: columns left out of the file."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE t ({TYPED_COLUMNS})")
    con.execute("INSERT INTO t (id, name, card, card_dec, born, login_at, at_tz, at_ms, at_epoch_ms, tod, loyalty, total, "
                "total_d, total_f, active) SELECT i, 'user ' || i, 9000000000000000 + i, 9000000000000000 + i, "
                "DATE '1990-01-01' + i::INTEGER, TIMESTAMP '2020-01-01 00:00:00.5' + to_seconds(i), "
                "TIMESTAMPTZ '2020-01-01 00:00:00.5+00' + to_seconds(i), TIMESTAMP '2020-01-01' + to_seconds(i), i, "
                "TIME '01:02:03' + to_seconds(i % 3600), i, i + 0.01, i + 0.01, i + 0.01, true "
                "FROM range(1, 1001) r(i)")
    for row, values in plants.items():
        sets = ", ".join(f"{column} = ?" for column in values)
        con.execute(f"UPDATE t SET {sets} WHERE id = ?", [*values.values(), row])
    exclude = f" EXCLUDE ({', '.join(without)})" if without else ""
    con.execute(f"COPY (SELECT *{exclude} FROM t ORDER BY id) TO '{path}' (FORMAT parquet)")
    con.close()


@pytest.fixture(params=[64, 0], ids=["typed IN lists", "temporary tables"])
def inline_max(request, monkeypatch):
    from privacy_checks.observe.stores import lake

    monkeypatch.setattr(lake, "_INLINE_MAX", request.param)
    return request.param


def test_typed_values_found_in_their_own_column_types_naming_file_row_and_column(tmp_path, inline_max):
    ada, bob = typed_subjects()
    last4 = f"**** {ada.fields['card_number'][-4:]}"
    write_typed_parquet(tmp_path / "export.parquet", {
        5: typed_row(ada),  # typed values alone, no canary in the row
        9: {"card": int(bob.fields["card_number"])},
        12: {"name": ada.fields["full_name"], "last4": last4},  # the last four beside the subject's canary
        13: {"last4": last4},  # ... and alone: anybody's
    })
    (tmp_path / "events.jsonl").write_text(
        json.dumps({"who": "x", "born": "1999-12-31", "seen": "2020-01-01T00:00:00.000001Z"}) + "\n"
        + json.dumps({"who": "y", "born": ada.fields["date_of_birth"], "seen": ada.fields["moment"]}) + "\n")
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "*")])], ada.needles() + bob.needles())
    assert result.unswept == []
    got = {(h.table_or_path.rsplit("/", 1)[1], h.row_key["row"], h.column_or_line): (h.field, h.form, h.weak)
           for h in result.hits if h.subject_id == ada.id and h.column_or_line != "name"}
    assert got == {
        ("export.parquet", 5, "card"): ("card_number", "integer", False),
        ("export.parquet", 5, "card_dec"): ("card_number", "integer", False),
        ("export.parquet", 5, "card_text"): ("card_number", "dashed", False),
        ("export.parquet", 5, "born"): ("date_of_birth", "date", True),
        ("export.parquet", 5, "born_text"): ("date_of_birth", "text (month/day/year)", True),
        ("export.parquet", 5, "login_at"): ("moment", "timestamp", False),
        ("export.parquet", 5, "at_tz"): ("moment", "timestamp", False),
        ("export.parquet", 5, "at_ms"): ("moment", "timestamp (ms)", False),
        ("export.parquet", 5, "at_epoch_ms"): ("moment", "epoch ms", False),
        ("export.parquet", 5, "tod"): ("moment", "time of day", True),
        ("export.parquet", 5, "loyalty"): ("loyalty", "integer", False),
        ("export.parquet", 5, "total"): ("total", "amount", True),
        ("export.parquet", 5, "total_d"): ("total", "amount", True),
        ("export.parquet", 5, "total_f"): ("total", "amount", True),
        ("export.parquet", 12, "last4"): ("card_number", "last four", True),
        # JSON Lines: DuckDB reads the date as a DATE and the instant as a timestamp
        ("events.jsonl", 2, "born"): ("date_of_birth", "date", True),
        ("events.jsonl", 2, "seen"): ("moment", "timestamp", False),
    }
    hit = next(h for h in result.hits if h.column_or_line == "card" and h.subject_id == ada.id)
    assert hit.place() == f"lake: file {tmp_path / 'export.parquet'}, row 5, column card"
    # the other subject's card in its own row, never Ada's
    assert {(h.row_key["row"], h.form) for h in result.hits if h.subject_id == bob.id} == {(9, "integer")}
    # only candidate rows came back: the planted ones, not the 1,000 of filler
    export = next(t for t in result.timings if t.where and t.where.endswith("export.parquet"))
    assert export.candidates == 3
    assert result.examined["lake"]["typed columns"] == 13 + 2


def test_a_file_without_the_typed_values_gives_no_hit_and_text_only_needles_read_no_typed_column(tmp_path,
                                                                                                  inline_max):
    ada, bob = typed_subjects()
    write_typed_parquet(tmp_path / "other.parquet", {5: typed_row(bob)})
    result = sweep([StoreSpec("lake", lake=[str(tmp_path / "*")])], ada.needles())
    assert result.hits == [] and result.unswept == []
    assert result.examined["lake"]["typed columns"] == 13
    # the same file holds Bob: the absence above is the file's, not the sweep's
    assert {h.column_or_line for h in sweep([StoreSpec("lake", lake=[str(tmp_path / "*")])], bob.needles()).hits} \
        >= {"card", "born", "login_at", "at_tz", "loyalty", "total"}
    from privacy_checks.observe.typed import TypedNeedle

    text_only = sweep([StoreSpec("lake", lake=[str(tmp_path / "*")])],
                      [n for n in bob.needles() if not isinstance(n, TypedNeedle)])
    assert "typed columns" not in text_only.examined["lake"]
    assert not [h for h in text_only.hits if h.column_or_line != "card_text"]
