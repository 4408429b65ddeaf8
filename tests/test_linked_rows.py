"""Rows still linked to a subject through its ids (observe/stores/sql_links.py), on real SQLite
and PostgreSQL databases: reflected foreign keys, declared identifier columns, a missing column."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from privacy_checks.errors import StoreError
from privacy_checks.observe.stores import StoreSpec, sweep
from privacy_checks.observe.stores.sql_links import link_columns, linked_rows, plan_for
from privacy_checks.retention import RetentionException, split_allowed
from privacy_checks.subjects import SubjectFactory

factory = SubjectFactory(seed="links", nonce="n0", fields=["full_name", "email"])
ADA, BOB = factory.build("test_links"), factory.build("test_links", role="control")


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(request, new_database):
    """users (with the subjects' canaries), orders with a declared foreign key, and tickets and
    invoices whose customer column declares none."""
    url = new_database(request.param)
    meta = sa.MetaData()
    users = sa.Table("users", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.Text))
    orders = sa.Table("orders", meta, sa.Column("id", sa.Integer, primary_key=True),
                      sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")), sa.Column("total", sa.Numeric(8, 2)))
    tickets = sa.Table("tickets", meta, sa.Column("id", sa.Integer, primary_key=True),
                       sa.Column("customer_id", sa.Integer), sa.Column("topic", sa.Text))
    engine = sa.create_engine(url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(users.insert(), [dict(id=17, email=ADA.fields["email"]), dict(id=18, email=BOB.fields["email"])])
        conn.execute(orders.insert(), [dict(id=1, user_id=17, total=5), dict(id=2, user_id=17, total=7),
                                       dict(id=3, user_id=18, total=9)])
        conn.execute(tickets.insert(), [dict(id=1, customer_id=17, topic="refund"), dict(id=2, customer_id=18, topic="login")])
    ADA.captured["user_id"], BOB.captured["user_id"] = 17, 18
    yield url, engine
    engine.dispose()


def _before(specs):
    return sweep(specs, ADA.needles() + BOB.needles()).hits


def test_declared_foreign_keys_and_identifier_columns_link_rows_until_they_go(shop):
    url, engine = shop
    specs = [StoreSpec("app", url=url)]
    identifiers = [{"captured": "user_id", "columns": ["tickets.customer_id"]}]
    columns = link_columns(specs, identifiers)
    assert {(c.table, c.column, c.via) for c in columns} == {
        ("orders", "user_id", "foreign key to users.id"), ("tickets", "customer_id", "identifiers: user_id")}
    hits_before = _before(specs)
    mine, bob = plan_for(ADA, columns, hits_before), plan_for(BOB, columns, hits_before)
    # positive control: before the deletion the same queries find the subject's rows
    found, read = linked_rows(specs, mine)
    assert read == 2
    assert sorted((h.table_or_path, h.column_or_line, h.row_key["id"], h.field) for h in found) == [
        ("orders", "user_id", 1, "user_id"), ("tickets", "customer_id", 1, "user_id")]
    assert all(h.form == "linked row" and not h.weak for h in found)
    assert {h.excerpt for h in found} == {"user_id = 17 links 2 rows to the subject (foreign key to users.id); "
                                          "also rows id=2",
                                          "customer_id = 17 links 1 row to the subject (identifiers: user_id)"}
    # the subject is deleted but its orders stay; its ticket goes
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tickets WHERE customer_id = 17")
        if engine.dialect.name == "postgresql":  # an application that enforces nothing (SQLite's default)
            conn.exec_driver_sql("ALTER TABLE orders DROP CONSTRAINT orders_user_id_fkey")
        conn.exec_driver_sql("DELETE FROM users WHERE id = 17")
    after, _ = linked_rows(specs, mine)
    assert [(h.table_or_path, h.row_key["id"], h.excerpt.split(";")[0]) for h in after] == [
        ("orders", 1, "user_id = 17 links 2 rows to the subject (foreign key to users.id)")]
    # the control's rows are all still linked to it
    assert sorted(h.row_key["id"] for h in linked_rows(specs, bob)[0]) == [2, 3]  # its order, its ticket


def test_a_retention_exception_keeps_a_linked_row_shown_as_retained(shop):
    url, _ = shop
    specs = [StoreSpec("app", url=url)]
    plan = plan_for(ADA, link_columns(specs, [{"captured": "user_id", "columns": ["tickets.customer_id"]}]),
                    _before(specs))
    found, _ = linked_rows(specs, plan)
    rule = RetentionException.from_profile({"store": "app", "table": "tickets", "field": "user_id", "form": "linked row",
                                            "legal_basis": "11 CCR §7101(a)", "reason": "request records"})
    bad, allowed = split_allowed(found, [rule])
    assert {h.table_or_path for h in bad} == {"orders"}
    assert [(h.table_or_path, h.row_key["id"]) for h, _ in allowed] == [("tickets", 1)]


def test_a_declared_identifier_column_that_does_not_exist_is_one_clear_error(shop):
    url, _ = shop
    with pytest.raises(StoreError) as err:
        link_columns([StoreSpec("app", url=url)], [{"captured": "user_id", "columns": ["orders.customer_no"]}])
    message = str(err.value)
    assert "identifiers[0] (user_id): column 'orders.customer_no' does not exist in store(s) app" in message


def test_lint_names_an_identifier_nobody_captures(tmp_path):
    from privacy_checks.profile import lint

    profile = tmp_path / "p.yaml"
    profile.write_text("""
name: shop
base_url: https://127.0.0.1:1
operations:
  create_subject:
    steps:
      - {method: POST, path: /users, json: {email: "{{ subject.email }}"}, capture: {user_id: json.id}}
stores:
  - {name: app, url: "sqlite:////tmp/none.db"}
  - {name: logs, files: ["/tmp/*.log"]}
identifiers:
  - {captured: user_ids, columns: ["*.user_id"], stores: [logs]}
""")
    problems = lint(profile, {})
    assert any("identifiers[0].captured" in p and "no operation captures 'user_ids'" in p
               and "did you mean 'user_id'" in p for p in problems), problems
    assert any("identifiers[0].stores[0]" in p and "does not fit" in p for p in problems), problems
