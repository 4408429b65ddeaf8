"""S3 stores, swept against a real S3 endpoint on loopback (moto's standalone server), versioning included."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import secrets
import uuid

import duckdb
import pytest

from privacy_checks.errors import StoreError
from privacy_checks.observe.forms import MARKER, Needle
from privacy_checks.observe.stores import StoreSpec, sweep

SECRET = "s3-secret-" + secrets.token_hex(6)


@pytest.fixture(scope="module")
def server():
    from privacy_checks.demo.services import S3Server

    srv = S3Server().start()
    yield srv
    srv.stop()


@pytest.fixture
def bucket(server):
    name = "b-" + uuid.uuid4().hex[:12]
    client = server.client()
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return client, name


def person(tag: str = "s1"):
    canary = MARKER + secrets.choice("abcdefghijklmnopqrstuvwxyz") + "".join(
        secrets.choice("abcdefghijklmnopqrstuvwxyz234567") for _ in range(9))
    email, name = f"ada.{canary}@example.com", f"Ada Lovelace {canary}"
    return canary, email, name, [Needle(tag, "email", email), Needle(tag, "full_name", name),
                                 Needle(tag, "username", f"ada_{canary}")]


def store(server, url: str, **options) -> StoreSpec:
    base = {"endpoint_url": server.url, "region": "us-east-1", "access_key_id": "privacy-checks",
            "secret_access_key": SECRET}
    return StoreSpec("objects", url=url, options={**base, **options})


def parquet_bytes(tmp_path, rows: list[tuple[int, str]]) -> bytes:
    path = tmp_path / f"{uuid.uuid4().hex}.parquet"
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id INTEGER, email VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [list(r) for r in rows])
    con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
    con.close()
    return path.read_bytes()


def test_keys_and_contents_of_every_kind_are_swept(server, bucket, tmp_path):
    client, name = bucket
    canary, email, full_name, needles = person()
    put = lambda key, body: client.put_object(Bucket=name, Key=key, Body=body)  # noqa: E731
    put(f"avatars/ada_{canary}.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # the key name holds it
    put("notes/readme.txt", f"line one\nwrite to {email.upper()} please\n".encode())
    put("docs/profile.json", json.dumps({"name": full_name}).encode())
    put("logs/app.log.gz", gzip.compress(f"ok\nlogin {base64.b64encode(email.encode()).decode()}\n".encode()))
    put("blobs/raw.bin", b"\x00\xff\xfe" + hashlib.sha256(email.encode()).hexdigest().encode() + b"\x00")
    put("lake/users.parquet", parquet_bytes(tmp_path, [(1, "x@example.org"), (2, email)]))
    put("lake/users.csv", f"id,email\n1,nobody\n2,{email}\n".encode())
    put("lake/events.jsonl.gz", gzip.compress((json.dumps({"n": 1}) + "\n" + json.dumps({"who": full_name}) + "\n").encode()))
    put("clean/other.txt", b"nothing here")
    result = sweep([store(server, f"s3://{name}")], needles)
    got = {(h.table_or_path.split("/", 3)[3], h.column_or_line, h.field, h.form) for h in result.hits}
    assert got == {
        (f"avatars/ada_{canary}.png", "key name", "username", "exact"),
        ("notes/readme.txt", "line 2", "email", "casefold"),
        ("docs/profile.json", "line 1", "full_name", "exact"),
        ("logs/app.log.gz", "line 2", "email", "base64"),
        ("blobs/raw.bin", "line 1", "email", "sha256"),
        ("lake/users.parquet", "row 2, column email", "email", "exact"),
        ("lake/users.csv", "row 2, column email", "email", "exact"),
        ("lake/events.jsonl.gz", "row 2, column who", "full_name", "exact"),
    }
    assert all(h.row_key["latest"] for h in result.hits) and result.unswept == []
    assert result.examined["objects"]["objects"] == 9
    hit = next(h for h in result.hits if "parquet" in h.table_or_path)
    assert hit.place().startswith(f"objects: object s3://{name}/lake/users.parquet, version ")
    assert hit.place().endswith("(latest), row 2, column email")


def test_older_versions_of_deleted_and_overwritten_objects_are_findings_naming_the_version(server, bucket):
    client, name = bucket
    _, email, _, needles = person()
    first = client.put_object(Bucket=name, Key="exports/accounts.jsonl", Body=f'{{"email": "{email}"}}\n'.encode())
    client.put_object(Bucket=name, Key="exports/accounts.jsonl", Body=b'{"email": "someone@example.org"}\n')
    gone = client.put_object(Bucket=name, Key="avatars/1.svg", Body=f"<svg><title>{email}</title></svg>".encode())
    client.delete_object(Bucket=name, Key="avatars/1.svg")  # only a delete marker
    result = sweep([store(server, f"s3://{name}")], needles)
    found = {(h.table_or_path, h.row_key["version_id"], h.row_key["latest"]) for h in result.hits}
    assert found == {(f"s3://{name}/exports/accounts.jsonl", first["VersionId"], False),
                     (f"s3://{name}/avatars/1.svg", gone["VersionId"], False)}
    assert all("(noncurrent)" in h.place() and h.row_key["version_id"] in h.place() for h in result.hits)
    # Deleting every version (what a real erasure does) leaves nothing to find.
    for v in client.list_object_versions(Bucket=name)["Versions"]:
        client.delete_object(Bucket=name, Key=v["Key"], VersionId=v["VersionId"])
    assert sweep([store(server, f"s3://{name}")], needles).hits == []
    # versions: false lists what a plain listing shows, current objects only
    assert sweep([store(server, f"s3://{name}", versions=False)], needles).examined == {}


def test_only_the_prefix_and_the_keys_asked_for_are_swept(server, bucket):
    client, name = bucket
    _, email, _, needles = person()
    for key in ("uploads/a.txt", "uploads/tmp/b.txt", "exports/c.txt"):
        client.put_object(Bucket=name, Key=key, Body=email.encode())
    under = sweep([store(server, f"s3://{name}/uploads/")], needles)
    assert sorted(h.table_or_path for h in under.hits) == [f"s3://{name}/uploads/a.txt", f"s3://{name}/uploads/tmp/b.txt"]
    kept = sweep([store(server, f"s3://{name}", exclude_keys=["uploads/tmp/*"])], needles)
    assert sorted(h.table_or_path for h in kept.hits) == [f"s3://{name}/exports/c.txt", f"s3://{name}/uploads/a.txt"]


def test_a_prefix_or_key_filter_holding_no_object_is_unswept_not_clean(server, bucket):
    client, name = bucket
    _, email, _, needles = person()
    client.put_object(Bucket=name, Key="avatars/1.svg", Body=email.encode())
    empty = sweep([store(server, f"s3://{name}/avatar/")], needles)
    assert [(u.where, u.reason.split(":")[0]) for u in empty.unswept] == [
        (f"s3://{name}/avatar/", "ListObjectVersions lists no object under the prefix")]
    filtered = sweep([store(server, f"s3://{name}/avatars/", include_keys=["avatars/*.png"])], needles)
    assert [(u.where, u.reason.split(":")[0]) for u in filtered.unswept] == [
        (f"s3://{name}/avatars/", "include_keys / exclude_keys leave none of the 1 object(s) under the prefix")]
    assert not empty.hits and not filtered.hits


def test_objects_over_a_cap_are_reported_unswept_unless_excluded(server, bucket):
    client, name = bucket
    _, email, _, needles = person()
    client.put_object(Bucket=name, Key="big/video.bin", Body=b"x" * 5000)
    client.put_object(Bucket=name, Key="small/a.txt", Body=email.encode())
    capped = sweep([store(server, f"s3://{name}", max_object_bytes=4000)], needles)
    assert [u.where.split(" ")[0] for u in capped.unswept] == [f"s3://{name}/big/video.bin"]
    assert "larger than max_object_bytes (4000)" in capped.unswept[0].reason
    assert len(capped.hits) == 1  # what could be read is still reported
    assert sweep([store(server, f"s3://{name}", max_object_bytes=4000, exclude_keys=["big/*"])], needles).unswept == []
    budget = sweep([store(server, f"s3://{name}", max_store_bytes=5010)], needles)
    assert [u.reason for u in budget.unswept] == ["not read: the store's max_store_bytes (5010) was reached"]


def test_an_object_with_corrupt_gzip_data_is_unswept_and_the_others_still_read(server, bucket):
    client, name = bucket
    _, email, _, needles = person()
    good = gzip.compress(("line\n" * 1000 + email + "\n").encode())
    # a sound gzip header over corrupt compressed data: zlib.error, which is not an OSError
    client.put_object(Bucket=name, Key="logs/a.log.gz", Body=good[:10] + bytes(b ^ 0xFF for b in good[10:40]) + good[40:])
    client.put_object(Bucket=name, Key="logs/b.log", Body=email.encode())
    result = sweep([store(server, f"s3://{name}/logs/")], needles)
    assert [(u.where.split(" ")[0], u.reason.split(":")[0]) for u in result.unswept] == [
        (f"s3://{name}/logs/a.log.gz", "unreadable")]
    assert {h.table_or_path for h in result.hits} == {f"s3://{name}/logs/b.log"}


def test_an_object_compressed_with_bzip2_or_xz_is_read_through(server, bucket):
    import bz2
    import lzma

    client, name = bucket
    _, email, _, needles = person()
    client.put_object(Bucket=name, Key="logs/a.log.bz2", Body=bz2.compress(("x\n" * 50 + email + "\n").encode()))
    client.put_object(Bucket=name, Key="logs/b.log.xz", Body=lzma.compress(("x\n" * 50 + email + "\n").encode()))
    result = sweep([store(server, f"s3://{name}/logs/")], needles)
    assert not result.unswept
    assert {(h.table_or_path, h.column_or_line) for h in result.hits if h.field == "email"} == {
        (f"s3://{name}/logs/a.log.bz2", "line 51"), (f"s3://{name}/logs/b.log.xz", "line 51")}


def test_a_wrong_bucket_or_endpoint_is_one_line_naming_the_store(server, bucket):
    _, _, _, needles = person()
    with pytest.raises(StoreError, match=r"^store 'objects': cannot list s3://no-such-bucket-x at http://127.0.0.1:\d+: "
                                         r"NoSuchBucket"):
        sweep([store(server, "s3://no-such-bucket-x")], needles)
    with pytest.raises(StoreError, match=r"^store 'objects': cannot list s3://x-y at http://127.0.0.1:1: "
                                         r"EndpointConnectionError"):
        sweep([store(server, "s3://x-y", endpoint_url="http://127.0.0.1:1")], needles, timeout_s=2)


def test_rejected_credentials_are_one_line_and_the_secret_never_shows():
    from privacy_checks.demo.services import S3Server

    strict = S3Server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()  # checks every key
    try:
        with pytest.raises(StoreError) as err:
            sweep([store(strict, "s3://any-bucket")], [])
    finally:
        strict.stop()
    message = str(err.value)
    assert message.startswith("store 'objects': cannot list s3://any-bucket at ") and "InvalidAccessKeyId" in message
    assert SECRET not in message and "\n" not in message


def test_the_s3_server_keeps_answering_however_much_it_has_logged(server):
    """A long run's requests once filled the S3 server's unread stderr pipe and stopped it
    mid-run (listings timed out, the demo's signups with them). Requests with long keys write
    far more than a pipe holds (64 KiB) in a few dozen requests; every one must still answer."""
    client = server.client()
    client.create_bucket(Bucket="noisy-log")
    long_key = "k" * 900
    for i in range(120):  # about 120 KiB of request lines at ~1 KiB each
        with pytest.raises(client.exceptions.ClientError):
            client.head_object(Bucket="noisy-log", Key=f"{long_key}{i}")
    client.put_object(Bucket="noisy-log", Key="after", Body=b"still answering")
    assert client.get_object(Bucket="noisy-log", Key="after")["Body"].read() == b"still answering"


def test_a_budget_that_runs_out_between_objects_names_the_objects_left(server, bucket, budget_runs_out):
    client, name = bucket
    canary, email, full_name, needles = person()
    for i in range(1, 31):  # object 0001 is read first (listing order); every one holds the subject
        client.put_object(Bucket=name, Key=f"notes/{i:04}.txt", Body=f"write to {email}\n".encode())
    spec = store(server, f"s3://{name}/notes/")
    full = sweep([spec], needles, budget_s=60)
    assert not full.unswept and len({h.table_or_path for h in full.hits}) == 30

    budget_runs_out(after=2)  # sweep()'s check before the store, then the one before the first object
    result = sweep([spec], needles, budget_s=60)
    assert {h.table_or_path for h in result.hits} == {f"s3://{name}/notes/0001.txt"}
    assert result.examined["objects"]["objects"] == 1
    versions = {v["Key"]: v["VersionId"] for v in client.list_object_versions(Bucket=name)["Versions"]}
    label = lambda i: f"s3://{name}/notes/{i:04}.txt (version {versions[f'notes/{i:04}.txt']})"  # noqa: E731
    assert [u.where for u in result.unswept] == [
        *(label(i) for i in range(2, 22)), f"9 more object version(s) after {label(21)}, the last of them {label(30)}"]
    assert all(u.reason.startswith("not swept: the sweep's time budget (timeouts.sweep: 60 s)")
               for u in result.unswept)


def test_a_budget_that_runs_out_while_listing_names_where_the_listing_stopped(server, bucket, budget_runs_out):
    from concurrent.futures import ThreadPoolExecutor

    client, name = bucket
    canary, email, full_name, needles = person()
    with ThreadPoolExecutor(8) as pool:  # two pages of ListObjectVersions (1,000 a page)
        list(pool.map(lambda i: client.put_object(Bucket=name, Key=f"k/{i:05}", Body=b"x"), range(1001)))
    budget_runs_out(after=1)  # sweep()'s check passes; the one after the listing's first page does not
    result = sweep([store(server, f"s3://{name}/")], needles, budget_s=60)
    assert result.unswept[0].where == (f"s3://{name}/: the objects listed after k/00999 (the listing stopped there: "
                                       "how many is unknown)")
    # the 1,000 versions listed were not read either (the budget had run out): none counts as examined
    assert [u.where.split(" (version")[0] for u in result.unswept[1:21]] == [f"s3://{name}/k/{i:05}" for i in range(20)]
    assert result.unswept[-1].where.startswith(f"980 more object version(s) after s3://{name}/k/00019 (version ")
    assert len(result.unswept) == 22 and result.examined == {}


def test_a_budget_that_runs_out_inside_one_big_object_names_the_lines_left(server, bucket, budget_runs_out):
    client, name = bucket
    canary, email, full_name, needles = person()
    body = f"login {email}\n" + "".join(f"request {i}\n" for i in range(2, 9000)) + f"logout {email}\n"
    client.put_object(Bucket=name, Key="logs/app.log.gz", Body=gzip.compress(body.encode()))
    spec = store(server, f"s3://{name}/logs/")
    assert {h.column_or_line for h in sweep([spec], needles, budget_s=60).hits} == {"line 1", "line 9000"}

    budget_runs_out(after=2)  # before the store, before the object; the look at line 4,096 finds it out
    result = sweep([spec], needles, budget_s=60)
    assert {h.column_or_line for h in result.hits} == {"line 1"}
    [left] = result.unswept
    version = client.list_object_versions(Bucket=name)["Versions"][0]["VersionId"]
    assert left.where == f"s3://{name}/logs/app.log.gz (version {version}), from line 4096 on"
    assert left.reason.startswith("not swept: the sweep's time budget (timeouts.sweep: 60 s)")
