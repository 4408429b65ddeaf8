"""Spark stores in local mode (local[2], Java from Debian's openjdk-17-jre-headless): the sweep's
predicates run as Spark SQL and only candidate rows come back."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil

import duckdb
import pytest

from privacy_checks.observe.forms import MARKER, Needle
from privacy_checks.observe.stores import StoreSpec, kind_of, sweep

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the Spark tests: install openjdk-17-jre-headless")
    pytest.skip("Java not installed (Debian: openjdk-17-jre-headless)", allow_module_level=True)


def person(tag: str = "s1"):
    canary = MARKER + secrets.choice("abcdefghijklmnopqrstuvwxyz") + "".join(
        secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(9))
    email, name = f"ada.{canary}@example.com", f"Ada Lovelace {canary}"
    return email, name, [Needle(tag, "email", email), Needle(tag, "full_name", name)]


def test_paths_and_catalog_tables_are_swept_in_one_scan_each_naming_file_row_and_column(tmp_path):
    email, name, needles = person()
    lake = tmp_path / "lake"
    lake.mkdir()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT i AS id, CASE WHEN i = 777 THEN '{email}' ELSE 'user' || i END AS email, "
                f"CASE WHEN i = 901 THEN '{hashlib.sha256(email.encode()).hexdigest()}' ELSE 'h' END AS digest "
                f"FROM range(1, 5001) t(i)) TO '{lake / 'users.parquet'}' (FORMAT parquet)")
    con.close()
    (lake / "events.csv").write_text(f"id,note\n1,hello\n2,call {name.upper()}\n")
    (lake / "audit.json").write_text(json.dumps({"who": {"name": name}}) + "\n" + json.dumps({"who": {"name": "x"}}))
    store = StoreSpec("warehouse", url="local[2]", options={
        "paths": [str(lake / "users.parquet"), str(lake / "events.csv"), str(lake / "audit.json")],
        "tables": ["signups"]})
    assert kind_of(store) == "spark"
    from privacy_checks.observe.stores.spark import session

    spark = session(store)
    spark.createDataFrame([(1, "nobody"), (2, f"welcome {email}")], ["id", "greeting"]).createOrReplaceTempView(
        "signups")
    result = sweep([store], needles, timeout_s=300)
    got = {(h.table_or_path.rsplit("/", 1)[-1], h.row_key["row"], h.column_or_line, h.field, h.form)
           for h in result.hits}
    assert got == {
        ("users.parquet", 777, "email", "email", "exact"),
        ("users.parquet", 901, "digest", "email", "sha256"),
        ("events.csv", None, "note", "full_name", "casefold"),
        ("audit.json", None, "who", "full_name", "exact"),
        ("signups", None, "greeting", "email", "exact"),
    }
    parquet = next(h for h in result.hits if h.row_key["row"] == 777)
    assert parquet.place().startswith(f"warehouse: file {lake / 'users.parquet'} (file:")
    assert parquet.place().endswith("users.parquet), row 777, column email")
    assert next(h for h in result.hits if h.table_or_path == "signups").place().startswith("warehouse: table signups")
    # only the candidate rows came back: two of 5,000 in the Parquet file
    assert next(t for t in result.timings if t.where and t.where.endswith("users.parquet")).candidates == 2
    assert result.unswept == [] and result.examined["warehouse"] == {"paths": 3, "tables": 1, "columns": 6}


def test_a_missing_table_or_path_is_unswept_not_clean(tmp_path):
    _, _, needles = person()
    store = StoreSpec("warehouse", url="local[2]", options={"tables": ["no_such_table"],
                                                            "paths": [str(tmp_path / "none.parquet")]})
    result = sweep([store], needles, timeout_s=120)
    assert [u.where for u in result.unswept] == ["no_such_table", str(tmp_path / "none.parquet")]
    assert all(u.reason.startswith("cannot read: ") for u in result.unswept)


def test_a_csv_row_with_more_fields_than_the_header_is_unswept_not_dropped(tmp_path):
    # Spark's default CSV mode (PERMISSIVE) drops, without a word, every field past the header's
    # count: the email in the third field was never read, and the file swept clean.
    email, _, needles = person()
    (tmp_path / "contacts.csv").write_text(f"id,name\n1,x\n2,x,{email}\n3,x\n")
    (tmp_path / "ok.csv").write_text(f"id,name\n1,{email}\n")
    store = StoreSpec("warehouse", url="local[2]", options={"paths": [str(tmp_path / "contacts.csv"),
                                                                      str(tmp_path / "ok.csv")]})
    result = sweep([store], needles, timeout_s=120)
    assert [u.where for u in result.unswept] == [str(tmp_path / "contacts.csv")]
    reason = result.unswept[0].reason
    assert "MALFORMED_CSV_RECORD" in reason and email not in reason, reason  # why, without the record
    assert [h.table_or_path for h in result.hits] == [str(tmp_path / "ok.csv")]


def test_a_headerless_csv_s_first_record_is_searched_as_row_0(tmp_path):
    # Read with header on, a headerless export's first line became the column names: never searched.
    email, _, needles = person()
    (tmp_path / "export.csv").write_text(f"{email},pro\nbob@example.org,free\n")
    store = StoreSpec("warehouse", url="local[2]", options={"paths": [str(tmp_path / "export.csv")]})
    result = sweep([store], needles, timeout_s=120)
    assert [(h.row_key["row"], h.column_or_line, h.field) for h in result.hits] == [(0, email, "email")]


def test_a_corrupt_file_is_unswept_even_where_the_cluster_is_set_to_skip_corrupt_files(tmp_path):
    # Data-lake clusters often run with spark.sql.files.ignoreCorruptFiles on (here from the
    # profile's conf, as a cluster's spark-defaults would): Spark then skips a file it cannot read
    # without an error, and the path swept clean. The sweep turns it off for its own reads.
    email, _, needles = person()
    lake = tmp_path / "lake"
    lake.mkdir()
    con = duckdb.connect()
    con.execute(f"COPY (SELECT 1 AS id, 'nobody' AS email) TO '{lake / 'a.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT 2 AS id, '{email}' AS email) TO '{lake / 'b.parquet'}' (FORMAT parquet)")
    con.close()
    data = (lake / "b.parquet").read_bytes()
    (lake / "b.parquet").write_bytes(data[:4] + b"\0" * (len(data) - 8) + data[-4:])  # the footer's length gone
    store = StoreSpec("warehouse", url="local[2]", options={
        "paths": [str(lake)], "conf": {"spark.sql.files.ignoreCorruptFiles": "true"}})
    result = sweep([store], needles, timeout_s=120)
    assert [u.where for u in result.unswept] == [str(lake)], result.unswept


def test_typed_values_are_compared_in_their_own_spark_types_and_a_file_without_them_gives_none(tmp_path):
    """Issue 15 in Spark: a card number as BIGINT, a birth date as DATE, an instant as TIMESTAMP
    (an instant) and TIMESTAMP_NTZ, an amount as DECIMAL and DOUBLE; the same session as above."""
    from tests.test_lake_store import typed_row, typed_subjects, write_typed_parquet

    ada, bob = typed_subjects()
    write_typed_parquet(tmp_path / "ada.parquet", {
        5: typed_row(ada),
        12: {"name": ada.fields["full_name"], "last4": f"**** {ada.fields['card_number'][-4:]}"},
        13: {"last4": f"**** {ada.fields['card_number'][-4:]}"}}, without=("tod",))  # Spark reads no TIME
    write_typed_parquet(tmp_path / "bob.parquet", {5: typed_row(bob)}, without=("tod",))
    store = StoreSpec("warehouse", url="local[2]", options={
        "paths": [str(tmp_path / "ada.parquet"), str(tmp_path / "bob.parquet")], "tables": ["visits"]})
    from privacy_checks.observe.stores.spark import session

    # a wall-clock TIMESTAMP_NTZ column of a catalog table, whatever Parquet's timestamps are read as
    wall = ada.fields["moment"].replace("T", " ").rstrip("Z")
    session(store).sql(f"SELECT 1 AS id, CAST('{wall}' AS TIMESTAMP_NTZ) AS seen UNION ALL "
                       "SELECT 2, CAST('2020-01-01 00:00:00.5' AS TIMESTAMP_NTZ)").createOrReplaceTempView("visits")
    result = sweep([store], ada.needles(), timeout_s=300)
    assert result.unswept == []
    got = {(h.table_or_path.rsplit("/", 1)[-1], h.row_key["row"], h.column_or_line): (h.field, h.form, h.weak)
           for h in result.hits if h.column_or_line != "name"}
    assert got == {
        ("ada.parquet", 5, "card"): ("card_number", "integer", False),
        ("ada.parquet", 5, "card_dec"): ("card_number", "integer", False),
        ("ada.parquet", 5, "card_text"): ("card_number", "dashed", False),
        ("ada.parquet", 5, "born"): ("date_of_birth", "date", True),
        ("ada.parquet", 5, "born_text"): ("date_of_birth", "text (month/day/year)", True),
        ("ada.parquet", 5, "login_at"): ("moment", "timestamp", False),
        ("ada.parquet", 5, "at_tz"): ("moment", "timestamp", False),
        ("ada.parquet", 5, "at_ms"): ("moment", "timestamp (ms)", False),
        ("ada.parquet", 5, "at_epoch_ms"): ("moment", "epoch ms", False),
        ("ada.parquet", 5, "loyalty"): ("loyalty", "integer", False),
        ("ada.parquet", 5, "total"): ("total", "amount", True),
        ("ada.parquet", 5, "total_d"): ("total", "amount", True),
        ("ada.parquet", 5, "total_f"): ("total", "amount", True),
        ("ada.parquet", 12, "last4"): ("card_number", "last four", True),
        ("visits", None, "seen"): ("moment", "timestamp", False),
    }
    # bob.parquet holds the same kinds of values, of another subject: no hit there, and only the
    # planted rows came back from the scans
    assert {t.where.rsplit("/", 1)[-1]: t.candidates for t in result.timings if t.where} == {
        "ada.parquet": 2, "bob.parquet": 0, "visits": 1}
    assert result.examined["warehouse"]["typed columns"] > 0


def test_a_budget_that_runs_out_between_tables_and_paths_names_those_left(tmp_path, budget_runs_out):
    email, _, needles = person()
    paths = []
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.csv").write_text(f"id,email\n1,x@example.org\n2,{email}\n")
        paths.append(str(tmp_path / f"{name}.csv"))
    store = StoreSpec("warehouse", url="local[2]", options={"paths": paths})
    full = sweep([store], needles, timeout_s=120, budget_s=600)
    assert not full.unswept and {h.table_or_path for h in full.hits} == set(paths)

    budget_runs_out(after=2)  # sweep()'s check before the store, then the one before a.csv
    result = sweep([store], needles, timeout_s=120, budget_s=600)
    assert [h.table_or_path for h in result.hits] == [paths[0]]
    assert [u.where for u in result.unswept] == paths[1:]
    assert all(u.reason.startswith("not swept: the sweep's time budget (timeouts.sweep: 600 s)")
               for u in result.unswept)
