"""Store-backed sinks: what a target records as sent, read from a real SQLite store."""

from __future__ import annotations

import base64
import secrets
import sqlite3

import pytest

from privacy_checks.errors import PrivacyChecksError, ProfileError
from privacy_checks.observe.forms import Needle
from privacy_checks.observe.store_sink import store_sink_hits
from privacy_checks.profile import load_profile


def canary() -> str:
    return "pcqz" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(10))


PROFILE = """
name: store-sink test
base_url: https://127.0.0.1:9
allowed_hosts: [127.0.0.1]
stores:
  - name: app
    url: sqlite:///{db}
    exclude_tables: [outbound_events]
  - name: logs
    files: ["{logs}/*.log"]
sinks:
  - name: newsletter
    role: third_party
    purpose: marketing email
    store: app
    table: outbound_events
  - name: broker
    role: sale
    purpose: purchase of personal information
    store: app
    query: "SELECT payload FROM outbound_events WHERE recipient = 'broker'"
  - name: missing
    role: third_party
    purpose: nothing
    store: app
    table: no_such_table
  - name: webhook-log
    role: third_party
    purpose: analytics
    store: logs
"""


@pytest.fixture
def world(tmp_path):
    db = tmp_path / "app.sqlite"
    logs = tmp_path / "logs"
    logs.mkdir()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE outbound_events (id INTEGER PRIMARY KEY, recipient TEXT, payload TEXT)")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    shared, sold, kept = canary(), canary(), canary()
    encoded = canary()
    conn.execute("INSERT INTO outbound_events (recipient, payload) VALUES ('newsletter', ?)",
                 (f'{{"note": "{shared}", "blob": "{base64.b64encode(encoded.encode()).decode()}"}}',))
    conn.execute("INSERT INTO outbound_events (recipient, payload) VALUES ('broker', ?)", (f'{{"name": "{sold}"}}',))
    conn.execute("INSERT INTO users (email) VALUES (?)", (f"{kept}@example.com",))
    conn.commit()
    conn.close()
    (logs / "webhooks.log").write_text(f"POST /analytics user={shared}\n")
    profile_path = tmp_path / "profile.yaml"
    profile_path.write_text(PROFILE.format(db=db, logs=logs))
    needles = [Needle("s1", "custom_field", shared), Needle("s1", "department", encoded),
               Needle("s2", "full_name", sold), Needle("s3", "email", f"{kept}@example.com")]
    return load_profile(profile_path), needles


def sink(profile, name):
    return next(s for s in profile.sinks if s["name"] == name)


def test_a_table_sink_finds_canaries_in_its_table_only_and_names_the_sink(world):
    profile, needles = world
    hits = store_sink_hits(profile, sink(profile, "newsletter"), needles)
    found = {(h.sink, h.role, h.subject_id, h.field, h.form) for h in hits}
    assert ("newsletter", "third_party", "s1", "custom_field", "exact") in found
    assert ("newsletter", "third_party", "s1", "department", "base64") in found
    assert ("newsletter", "third_party", "s2", "full_name", "exact") in found  # same table, other row
    assert not any(h.subject_id == "s3" for h in hits)  # users is not what the recipient got
    # the store excludes the table from residual sweeps; the sink still reads it
    assert all("outbound_events" in h.where() and "payload" in h.where() for h in hits)


def test_a_query_sink_reads_only_the_rows_its_query_selects(world):
    profile, needles = world
    hits = store_sink_hits(profile, sink(profile, "broker"), needles)
    assert [(h.sink, h.role, h.subject_id, h.field) for h in hits] == [("broker", "sale", "s2", "full_name")]
    assert "query row 1 column payload" in hits[0].where()


def test_a_file_store_sink_reads_the_log(world):
    profile, needles = world
    hits = store_sink_hits(profile, sink(profile, "webhook-log"), needles)
    assert [(h.sink, h.subject_id) for h in hits] == [("webhook-log", "s1")]
    assert "webhooks.log, line 1" in hits[0].where()


def test_a_sink_table_that_does_not_exist_is_an_error_never_a_clean_result(world):
    profile, needles = world
    with pytest.raises(PrivacyChecksError, match="sink 'missing': no table matching .*no_such_table"):
        store_sink_hits(profile, sink(profile, "missing"), needles)


def test_a_query_that_is_not_a_select_is_refused(world):
    profile, needles = world
    bad = dict(sink(profile, "broker"), query="DELETE FROM outbound_events")
    with pytest.raises(PrivacyChecksError, match="'query' must be a SELECT"):
        store_sink_hits(profile, bad, needles)


def test_profile_rejects_a_table_sink_on_a_file_store(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(PROFILE.format(db=tmp_path / "x.sqlite", logs=tmp_path).replace(
        "    store: logs\n", "    store: logs\n    table: events\n"))
    with pytest.raises(ProfileError, match="database store"):
        load_profile(path)


def test_a_redis_stream_and_an_s3_prefix_stand_for_what_a_recipient_received(tmp_path):
    import redis

    from privacy_checks.demo.services import RedisServer, S3Server

    cache, bucket = RedisServer().start(), S3Server().start()
    try:
        sent, kept = canary(), canary()
        client = redis.Redis.from_url(cache.url)
        client.xadd("outbound:crm", {"payload": f'{{"name": "{sent}"}}'})
        client.set("profile:1", kept)  # in the store, but not what went to the recipient
        s3 = bucket.client()
        s3.create_bucket(Bucket="outbox")
        s3.put_object(Bucket="outbox", Key="partner/2026-11-29.jsonl", Body=f'{{"email": "{sent}@example.com"}}\n'.encode())
        s3.put_object(Bucket="outbox", Key="archive/old.jsonl", Body=f'{{"email": "{kept}@example.com"}}\n'.encode())
        path = tmp_path / "p.yaml"
        path.write_text(f"""
name: sinks in caches and buckets
base_url: https://127.0.0.1:9
allowed_hosts: [127.0.0.1]
stores:
  - name: queue
    url: {cache.url}
  - name: outbox
    url: s3://outbox
    endpoint_url: {bucket.url}
    region: us-east-1
    access_key_id: test
    secret_access_key: ${{PCQ_TEST_S3_SECRET}}
sinks:
  - {{name: crm, role: service_provider, purpose: crm, store: queue, key: "outbound:crm"}}
  - {{name: partner, role: third_party, purpose: marketing, store: outbox, key: "partner/*"}}
  - {{name: nobody, role: third_party, purpose: none, store: queue, key: "outbound:none"}}
""")
        profile = load_profile(path, env={"PCQ_TEST_S3_SECRET": "x"})
        needles = [Needle("s1", "custom_field", sent), Needle("s1", "email", f"{sent}@example.com"),
                   Needle("s2", "custom_field", kept), Needle("s2", "email", f"{kept}@example.com")]
        crm = store_sink_hits(profile, sink(profile, "crm"), needles)
        assert [(h.sink, h.subject_id, h.field) for h in crm] == [("crm", "s1", "custom_field")]
        assert "key outbound:crm (stream)" in crm[0].where()
        partner = store_sink_hits(profile, sink(profile, "partner"), needles)
        assert {(h.sink, h.subject_id) for h in partner} == {("partner", "s1")}
        assert "object s3://outbox/partner/2026-11-29.jsonl" in partner[0].where()
        with pytest.raises(PrivacyChecksError, match="sink 'nobody': nothing matching outbound:none in store 'queue'"):
            store_sink_hits(profile, sink(profile, "nobody"), needles)
    finally:
        cache.stop()
        bucket.stop()


def test_the_delivery_log_of_a_store_backed_sink_numbers_what_appears_between_reads(tmp_path):
    """What the sharing procedures use between rounds: an entry new or changed since the last read
    is a delivery numbered after everything before; one unchanged (a TTL ticking down included)
    is not; the control's entry seen in the same read is numbered after the subject's."""
    import redis

    from privacy_checks.demo.services import RedisServer
    from privacy_checks.observe.store_sink import StoreSinkLog

    cache = RedisServer().start()
    try:
        path = tmp_path / "p.yaml"
        path.write_text(f"""
name: a delivery log
base_url: https://127.0.0.1:9
allowed_hosts: [127.0.0.1]
stores:
  - name: queue
    url: {cache.url}
sinks:
  - {{name: partner, role: third_party, purpose: marketing, store: queue, key: "sent:*"}}
""")
        profile = load_profile(path)
        mine, theirs = canary(), canary()
        needles = [Needle("s", "custom_field", mine), Needle("c", "custom_field", theirs)]
        log = StoreSinkLog(profile, profile.sinks, needles, ["s", "c"])
        start = log.poll()
        # nothing recorded yet is no error while waiting; why is kept for the verdict
        assert "nothing matching sent:* in store 'queue'" in log.empty["partner"]
        client = redis.Redis.from_url(cache.url)
        client.xadd("sent:partner", {"payload": theirs})  # the control's entry written first ...
        client.xadd("sent:partner", {"payload": mine})
        after = log.poll()
        assert not log.empty
        got = {r.hit.subject_id: r.seq for r in log.since(start, needles)}
        # ... is still numbered after the subject's seen in the same read: the control acts last
        assert start < got["s"] < got["c"] == after, got
        client.expire("sent:partner", 3600)  # a TTL changes nothing delivered
        assert log.poll() == after and log.since(after, needles) == []
        client.set("sent:once", mine)
        first = log.poll()
        assert [r.hit.entry for r in log.since(after, needles)] == ["value"]
        client.delete("sent:once")
        assert log.poll() == first
        client.set("sent:once", mine)  # gone and written again: a delivery again
        again = log.poll()
        assert again > first and [(r.hit.subject_id, r.seq) for r in log.since(first, needles)] == [("s", again)]
    finally:
        cache.stop()


@pytest.mark.parametrize(("sink", "said"), [
    # a key names Redis keys or S3 objects: an SQL store has none (the run refused it; now lint does)
    ("{name: k, role: third_party, purpose: p, store: app, key: 'sent:*'}",
     "sinks[0].store: store 'app' does not fit: a sink's 'key' names Redis keys or S3 objects"),
    # a table or a query is SQL: a Redis store has a url too, but no tables
    ("{name: t, role: third_party, purpose: p, store: cache, table: outbound}",
     "sinks[0].store: store 'cache' does not fit: a sink's 'table' or 'query' is in a database store"),
])
def test_lint_rejects_a_sink_whose_store_is_of_the_wrong_kind_as_the_run_would(tmp_path, sink, said):
    from privacy_checks.profile import lint

    path = tmp_path / "p.yaml"
    path.write_text(f"""
name: kinds
base_url: https://127.0.0.1:9
allowed_hosts: [127.0.0.1]
stores:
  - {{name: app, url: "sqlite:///{tmp_path}/app.sqlite"}}
  - {{name: cache, url: "redis://127.0.0.1:9/0"}}
sinks:
  - {sink}
""")
    problems = lint(path, {})
    assert any(said in p for p in problems), problems
    with pytest.raises(ProfileError, match="does not fit"):
        load_profile(path)
