"""Redis stores, swept against a real redis-server (Debian's) started on a free loopback port."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading

import pytest
import redis

from privacy_checks.errors import StoreError
from privacy_checks.observe.forms import MARKER, Needle
from privacy_checks.observe.stores import StoreSpec, sweep
from privacy_checks.retention import RetentionException, split_allowed

PASSWORD = "redis-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def server():
    from privacy_checks.demo.services import RedisServer

    srv = RedisServer(password=PASSWORD).start()
    yield srv
    srv.stop()


@pytest.fixture
def r(server):
    client = redis.Redis.from_url(server.url)
    for db in range(4):
        client.execute_command("SELECT", db)
        client.flushdb()
    client.execute_command("SELECT", 0)
    yield client
    client.close()


def person(tag: str = "s1"):
    canary = MARKER + secrets.choice("abcdefghijklmnopqrstuvwxyz") + "".join(
        secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(9))
    email = f"ada.{canary}@example.com"
    name = f"Ada Lovelace {canary}"
    return canary, email, name, [Needle(tag, "email", email), Needle(tag, "full_name", name),
                                 Needle(tag, "phone", "+1-555-0142", weak=True)]


def store(server, **options) -> StoreSpec:
    url = options.pop("url", server.url)
    return StoreSpec("cache", url=url, options=options)


def test_every_type_is_read_and_a_finding_names_db_key_type_member_and_ttl(server, r):
    canary, email, name, needles = person()
    r.set("profile:1", json.dumps({"name": name}), ex=7 * 86400)
    r.hset("user:1", mapping={"email": email, "plan": "basic"})
    r.rpush("queue", "nothing", base64.b64encode(email.encode()))
    r.sadd("hashes", hashlib.sha256(email.encode()).hexdigest())
    r.zadd("ranking", {name: 3.0})
    r.xadd("events", {"payload": f"signup {email.upper()}"})
    r.set(f"session:{email}", "1")  # the key name itself
    for i in range(200):
        r.set(f"noise:{i}", f"value {i}")
    result = sweep([store(server)], needles)
    got = {(h.table_or_path, h.column_or_line, h.row_key["type"], h.field, h.form) for h in result.hits}
    assert got == {
        ("profile:1", "value", "string", "full_name", "exact"),
        ("user:1", "field email", "hash", "email", "exact"),
        ("queue", "index 1", "list", "email", "base64"),
        ("hashes", "member", "set", "email", "sha256"),
        ("ranking", "member", "zset", "full_name", "exact"),
        (next(h.table_or_path for h in result.hits if h.row_key["type"] == "stream"),
         next(h.column_or_line for h in result.hits if h.row_key["type"] == "stream"), "stream", "email", "casefold"),
        (f"session:{email}", "key name", "string", "email", "exact"),
    }
    stream_hit = next(h for h in result.hits if h.row_key["type"] == "stream")
    assert stream_hit.table_or_path == "events" and stream_hit.column_or_line.endswith("field payload")
    profile_hit = next(h for h in result.hits if h.table_or_path == "profile:1")
    assert 7 * 86400 - 60 < profile_hit.expires_in <= 7 * 86400
    assert "cache: db 0, key profile:1 (string), value, held for 6 days 23 h more" in profile_hit.place()
    assert "no expiry" in next(h for h in result.hits if h.table_or_path == "user:1").place()
    assert result.unswept == []
    assert result.examined["cache"]["keys"] == 207


def test_every_database_holding_keys_is_swept_unless_the_url_names_one(server, r):
    _, email, _, needles = person()
    r.set("a", email)
    other = redis.Redis.from_url(server.url, db=3)
    other.set("b", email)
    everywhere = sweep([store(server)], needles)
    assert sorted((h.row_key["db"], h.table_or_path) for h in everywhere.hits) == [(0, "a"), (3, "b")]
    only_three = sweep([store(server, url=server.url + "/3")], needles)
    assert [(h.row_key["db"], h.table_or_path) for h in only_three.hits] == [(3, "b")]
    chosen = sweep([store(server, databases=[0])], needles)
    assert [(h.row_key["db"], h.table_or_path) for h in chosen.hits] == [(0, "a")]


def test_a_database_or_key_filter_holding_no_key_is_unswept_not_clean(server, r):
    _, email, _, needles = person()
    r.set("user:1", email)
    empty = sweep([store(server, url=server.url + "/2")], needles)
    assert [(u.where, u.reason.split(": nothing")[0]) for u in empty.unswept] == [("db 2", "no key in the database(s)")]
    for search in ("scan", "lua"):
        filtered = sweep([store(server, databases=[0], include_keys=["users:*"], search=search)], needles)
        assert [(u.where, u.reason.split(": nothing")[0]) for u in filtered.unswept] == [
            ("db 0", "no key matching users:* in the database(s)")], search
        assert not sweep([store(server, databases=[0], include_keys=["user:*"], search=search)], needles).unswept
    left = sweep([store(server, exclude_keys=["user:*"])], needles)
    assert [u.reason.split(": nothing")[0] for u in left.unswept] == ["no key that exclude_keys leaves in the database(s)"]


def test_large_collections_are_read_past_their_first_reply(server, r):
    _, email, _, needles = person()
    # Beyond 128 entries a hash, set and sorted set leave their compact encoding: HSCAN/SSCAN/ZSCAN
    # then return a chunk at a time, and a list is read 1000 items per LRANGE.
    r.hset("big:hash", mapping={f"f{i}": f"v{i}" for i in range(3000)} | {"f-last": email})
    r.sadd("big:set", *[f"m{i}" for i in range(3000)], email)
    r.rpush("big:list", *[f"i{i}" for i in range(2500)], email)
    for i in range(2500):
        r.xadd("big:stream", {"n": str(i)})
    r.xadd("big:stream", {"who": email})
    # a sorted set is first read by rank (ZRANGE 0 99); one that fills that chunk is read again
    # whole by ZSCAN, and a member it holds twice over is named once
    r.zadd("big:zset", {f"z{i}": i for i in range(3000)} | {email: 1500.5})
    r.zadd("small:zset", {f"z{i}": i for i in range(99)} | {email: 0.5})
    result = sweep([store(server, scan_count=100)], needles)
    assert {h.table_or_path for h in result.hits} == {"big:hash", "big:set", "big:list", "big:stream", "big:zset",
                                                      "small:zset"}
    assert len([h for h in result.hits if h.table_or_path == "small:zset"]) == 1
    assert next(h for h in result.hits if h.table_or_path == "big:list").column_or_line == "index 2500"
    assert result.unswept == []


def test_a_value_over_the_cap_is_read_up_to_it_and_reported_unswept(server, r):
    _, email, _, needles = person()
    r.set("blob", email + " " + "x" * 5000)
    r.set("small", email)
    result = sweep([store(server, max_value_bytes=1000)], needles)
    assert {h.table_or_path for h in result.hits} == {"blob", "small"}  # what was read still counts
    assert [(u.where, "max_value_bytes (1000)" in u.reason) for u in result.unswept] == [("db 0 key blob", True)]


def test_include_and_exclude_keys(server, r):
    _, email, _, needles = person()
    r.set("cache:profile:1", email)
    r.set("ratelimit:1", email)
    result = sweep([store(server, include_keys=["cache:*"])], needles)
    assert [h.table_or_path for h in result.hits] == ["cache:profile:1"]
    result = sweep([store(server, exclude_keys=["ratelimit:*"])], needles)
    assert [h.table_or_path for h in result.hits] == ["cache:profile:1"]


def test_keys_added_during_the_sweep_neither_loop_it_nor_hide_keys_that_existed_throughout(server, r):
    planted = []
    needles = []
    for i in range(40):
        _, email, _, ns = person(f"s{i}")
        planted.append(f"user:{i}:{secrets.token_hex(4)}")
        r.set(planted[-1], email)
        needles += ns
    pipe = r.pipeline(transaction=False)
    for i in range(20000):
        pipe.set(f"filler:{i}", "x")
    pipe.execute()
    stop = threading.Event()

    def writer():
        client = redis.Redis.from_url(server.url)
        # 40,000 new keys, twice what is there: the keyspace rehashes while SCAN walks it
        for batch in range(80):
            if stop.is_set():
                break
            pipe = client.pipeline(transaction=False)
            for n in range(500):
                pipe.set(f"added:{batch}:{n}", "y")
            pipe.execute()
        client.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = sweep([store(server, scan_count=200)], needles, timeout_s=60)
    finally:
        stop.set()
        thread.join()
    assert sorted(h.table_or_path for h in result.hits) == sorted(planted)


def test_server_side_search_finds_what_the_scan_finds(server, r):
    _, email, name, needles = person()
    r.set("s", name)
    r.hset("h", "e", hashlib.md5(email.encode()).hexdigest())
    r.rpush("l", "a", base64.b64encode(email.encode()))
    r.xadd("x", {"p": email.upper()})
    r.set("weak", "+1-555-0142")
    for i in range(500):
        r.set(f"n{i}", "v")
    scan = sweep([store(server)], needles)
    lua = sweep([store(server, search="lua")], needles)
    key = lambda h: (h.table_or_path, h.column_or_line, h.field, h.form)  # noqa: E731
    assert sorted(map(key, lua.hits)) == sorted(map(key, scan.hits))
    # the phone number alone in "weak" proves nothing and is not looked for (next test)
    assert len(scan.hits) == 4
    # only the four candidate keys came back to be read; the other 501 were searched on the server
    assert lua.examined["cache"]["keys"] == 4 and lua.examined["cache"]["keys searched on the server"] == 505


def test_a_value_stored_as_utf16_is_found_by_the_scan_and_by_the_server_side_search(server, r):
    # Redis keeps bytes: a value a Windows program wrote in UTF-16 holds the canary as UTF-16, which
    # the page gate passed but the Matcher, reading it as UTF-8, never saw.
    _, email, _, needles = person()
    r.set("profile:7", ("contact: " + email).encode("utf-16-le"))
    r.hset("h", "note", ("EMAIL " + email.upper()).encode("utf-16-le"))
    r.set("other", "v")
    for search in ("scan", "lua"):
        result = sweep([store(server, search=search)], needles)
        assert sorted((h.table_or_path, h.column_or_line, h.field, h.form) for h in result.hits) == [
            ("h", "field note", "email", "casefold"), ("profile:7", "value", "email", "exact")], search


def test_a_compressed_value_is_inflated_and_searched_by_the_scan_and_by_the_server_side_search(server, r):
    """Caches compress what they keep (Rails' cache store deflates entries over 1 KiB; django-redis
    has zlib and gzip compressors): the canary is then nowhere in the raw bytes, and such a key
    swept clean while holding the subject."""
    import gzip
    import pickle
    import zlib

    _, email, name, needles = person()
    entry = pickle.dumps({"email": email, "bio": "x" * 2000})  # a serialised object, as caches keep
    r.set("views/profile/7", zlib.compress(entry))
    r.hset("session:9", "data", b"\x04\x08" + zlib.compress(("user " + name).encode()))  # a serialiser's own prefix
    r.rpush("mailq", gzip.compress(email.upper().encode()))
    r.set("big", zlib.compress(("Ada " + email + " " + "y" * 5000).encode()))
    r.set("cut", zlib.compress(("Ada " + email + " " + "z" * 5000).encode())[:60])
    r.set("plain", zlib.compress(b"nothing of anyone"))
    r.set("text", "x^ looks like a zlib header and is not one")
    r.set("zstd", b"\x28\xb5\x2f\xfd" + b"\x00" * 40)  # a frame the standard library cannot read
    for search in ("scan", "lua"):
        result = sweep([store(server, search=search, max_value_bytes=4096)], needles)
        hits = sorted((h.table_or_path, h.column_or_line, h.field, h.form) for h in result.hits)
        assert hits == [
            ("big", "value (zlib-compressed)", "email", "exact"),
            ("cut", "value (zlib-compressed)", "email", "exact"),
            ("mailq", "index 0 (gzip-compressed)", "email", "casefold"),
            ("session:9", "field data (zlib-compressed)", "full_name", "exact"),
            ("views/profile/7", "value (zlib-compressed)", "email", "exact"),
        ], search
        unswept = sorted((u.where, u.reason.split(":")[0]) for u in result.unswept)
        assert [w for w, _ in unswept] == ["db 0 key big", "db 0 key cut", "db 0 key zstd"], (search, result.unswept)
        assert "zstd data cannot be inflated" in " ".join(u.reason for u in result.unswept)
        assert "inflates past max_value_bytes (4096)" in " ".join(u.reason for u in result.unswept)
        assert "ends before its stream does" in " ".join(u.reason for u in result.unswept)


def test_a_weak_value_is_named_beside_proof_in_its_key_and_not_looked_for_alone(server, r):
    """A key is a record: once one of its values holds proof the whole key is matched, and the
    weak values in it are named beside the proof; a key holding only a weak value is not."""
    _, email, _, needles = person()
    phone = next(n.value for n in needles if n.weak)
    r.hset("profile:1", mapping={"email": email, "phone": phone})
    r.hset("profile:2", mapping={"email": "someone@example.org", "phone": phone})
    r.rpush("calls", "x", phone)
    for i in range(300):
        r.set(f"n{i}", f"v{i}")
    hits = {(h.table_or_path, h.column_or_line, h.field, h.weak) for h in sweep([store(server)], needles).hits}
    assert hits == {("profile:1", "field email", "email", False), ("profile:1", "field phone", "phone", True)}


def test_a_retention_exception_with_max_ttl_allows_only_keys_expiring_within_it(server, r):
    _, email, _, needles = person()
    r.set("soon", email, ex=3600)
    r.set("week", email, ex=7 * 86400)
    r.set("forever", email)
    hits = sweep([store(server)], needles).hits
    exc = RetentionException.from_profile({"store": "cache", "key": "*", "legal_basis": "x", "reason": "y",
                                           "max_ttl": "24h"})
    bad, allowed = split_allowed(hits, [exc])
    assert sorted(h.table_or_path for h in bad) == ["forever", "week"]
    assert [h.table_or_path for h, _ in allowed] == ["soon"]


def test_a_wrong_password_or_address_is_one_line_naming_the_store_without_the_secret(server, r):
    _, _, _, needles = person()
    wrong = server.url.replace(PASSWORD, "not-the-password")
    with pytest.raises(StoreError) as err:
        sweep([store(server, url=wrong)], needles)
    message = str(err.value)
    assert message.startswith("store 'cache': cannot read redis://:***@127.0.0.1:") and "\n" not in message
    assert PASSWORD not in message and "not-the-password" not in message
    with pytest.raises(StoreError, match="store 'cache': cannot read redis://:\\*\\*\\*@127.0.0.1:1/0: ConnectionError"):
        sweep([store(server, url=f"redis://:{PASSWORD}@127.0.0.1:1/0")], needles, timeout_s=2)


def test_the_page_gate_passes_exactly_the_values_the_proof_prefilter_passes():
    """The sweep tests a page's values joined by newlines with bytes.find and one translate
    (redis.py, _PageGate) instead of one regular expression per value: on values holding the
    literal in any case and in UTF-16, digests, 31-digit hex runs, typed texts and near misses,
    it must select exactly the values the plan's own expression selects."""
    import random

    from privacy_checks.observe.stores.base import Plan
    from privacy_checks.observe.stores.redis import _PageGate
    from privacy_checks.observe.typed import TypedNeedle

    canary, email, name, needles = person()
    needles.append(TypedNeedle("s1", "moment", "2026-11-29T10:11:12.739123Z", kind="timestamp"))
    plan = Plan(needles, ("exact", "casefold", "urlencoded", "base64", "md5", "sha1", "sha256"))
    digest = hashlib.md5(email.encode()).hexdigest()
    rng = random.Random(3)
    pieces = [email.upper(), canary.swapcase(), email.encode("utf-16-le").decode("latin-1"), digest, digest[:31],
              "f" * 31 + "\n" + "0", "2026-11-29 10:11:12.739", "2026-11-29 10:11:12", "+1-555-0142",
              base64.b64encode(email.encode()).decode(), "Q0N", "0nd", "plain words", ""]
    chunks = [" ".join(rng.sample(pieces, rng.randint(0, 2))).encode("latin-1") for _ in range(400)]
    expected = {i for i, c in enumerate(chunks) if plan.proof_prefilter.search(c)}
    assert 50 < len(expected) < 350
    assert _PageGate.of(plan).holding(chunks) == expected


@pytest.fixture(scope="module")
def json_server(tmp_path_factory):
    """A redis-server with a module whose data type is named as RedisJSON's ("ReJSON-RL") and
    which answers JSON.SET/JSON.GET as RedisJSON documents them (tests/redis_modules/json_standin.c,
    built here with the C compiler .ci/run installs): no RedisJSON build can be installed here."""
    import shutil
    import subprocess
    from pathlib import Path

    from privacy_checks.demo.services import RedisServer

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler to build the RedisJSON stand-in module: install gcc (.ci/run does)")
    source = Path(__file__).parent / "redis_modules" / "json_standin.c"
    module = tmp_path_factory.mktemp("redis-module") / "json_standin.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(module), str(source)], check=True, timeout=120)
    srv = RedisServer(password=PASSWORD, extra=["--loadmodule", str(module)]).start()
    yield srv
    srv.stop()


def test_a_json_document_is_read_with_json_get_and_a_finding_names_key_type_and_ttl(json_server):
    client = redis.Redis.from_url(json_server.url)
    client.flushall()
    _, email, name, needles = person()
    doc = json.dumps({"profile": {"name": name, "contact": {"email": base64.b64encode(email.encode()).decode()}}})
    client.execute_command("JSON.SET", "account:7", "$", doc)
    client.expire("account:7", 3600)
    client.execute_command("JSON.SET", "account:8", "$", json.dumps({"profile": {"name": "someone else"}}))
    client.execute_command("JSON.SET", "big", "$", json.dumps({"pad": "x" * 5000, "email": email}))
    assert client.type("account:7") == b"ReJSON-RL"  # what TYPE answers under RedisJSON
    for search in ("scan", "lua"):
        result = sweep([store(json_server, search=search, max_value_bytes=1000)], needles)
        got = {(h.table_or_path, h.column_or_line, h.row_key["type"], h.field, h.form) for h in result.hits}
        # the big document's email lies past the cap: not found, and the cut is reported
        assert got == {("account:7", "document", "ReJSON-RL", "full_name", "exact"),
                       ("account:7", "document", "ReJSON-RL", "email", "base64")}, (search, got)
        hit = next(h for h in result.hits if h.field == "full_name")
        assert "cache: db 0, key account:7 (ReJSON-RL), document, held for 59 min" in hit.place(), hit.place()
        assert [(u.where, "JSON document larger than max_value_bytes (1000)" in u.reason)
                for u in result.unswept] == [("db 0 key big", True)], (search, result.unswept)
    client.close()


def test_a_budget_that_runs_out_between_scan_pages_names_the_database_and_cursor_left(server, r, budget_runs_out):
    canary, email, name, needles = person()
    r.set("profile:1", email)
    r.execute_command("SELECT", 1)
    for i in range(200):  # every key holds the subject: each one read must come back as a hit
        r.set(f"session:{i}", f"{name} {i}")
    r.execute_command("SELECT", 0)
    spec = store(server, databases=[0, 1], scan_count=10)
    full = sweep([spec], needles, budget_s=60)
    assert not full.unswept and len({(h.row_key["db"], h.table_or_path) for h in full.hits}) == 201

    # checks: before the store, before db 0's only page, before db 1's first page; then it is out
    budget_runs_out(after=3)
    result = sweep([spec], needles, budget_s=60)
    keys = {(h.row_key["db"], h.table_or_path) for h in result.hits}
    assert (0, "profile:1") in keys
    first_page = {k for db, k in keys if db == 1}
    # the page SCAN returned was searched whole, and no further page was asked for
    assert 0 < len(first_page) < 200 and result.examined["cache"]["keys"] == 1 + len(first_page)
    [left] = result.unswept
    assert re.fullmatch(r"db 1: the keys SCAN had not returned when the sweep stopped at cursor [1-9]\d* "
                        r"\(how many is unknown\)", left.where), left.where
    assert left.reason.startswith("not swept: the sweep's time budget (timeouts.sweep: 60 s)")

    # out before any page: each database says SCAN never started (not "no key", which is a
    # different finding)
    budget_runs_out(after=1)
    result = sweep([store(server, databases=[0, 1], include_keys=["session:*"])], needles, budget_s=60)
    assert not result.hits
    assert [u.where for u in result.unswept] == ["db 0: every key matching session:* (SCAN not started)",
                                                 "db 1: every key matching session:* (SCAN not started)"]
