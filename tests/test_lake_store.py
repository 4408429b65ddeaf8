"""Data-lake files (Parquet, CSV, JSON Lines, plain or gzip) swept by DuckDB, predicates in its scan."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
import urllib.parse

import duckdb

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
