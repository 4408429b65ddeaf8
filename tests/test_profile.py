"""Target profiles: the demo profile is valid, and each kind of mistake gives its exact message."""

from __future__ import annotations

from pathlib import Path

import pytest

from privacy_checks.errors import ProfileError
from privacy_checks.profile import host_allowed, lint, load_profile

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "targets" / "demo.yaml"
DEMO_ENV = {
    "PRIVACY_CHECKS_DEMO_URL": "https://127.0.0.1:1",
    "PRIVACY_CHECKS_DEMO_HTTP_URL": "http://127.0.0.1:2",
    "PRIVACY_CHECKS_DEMO_DATA": "/tmp/x",
    "PRIVACY_CHECKS_DEMO_ADMIN_TOKEN": "t",
    "PRIVACY_CHECKS_DEMO_REDIS": "127.0.0.1:3",
    "PRIVACY_CHECKS_DEMO_S3_URL": "http://127.0.0.1:4",
    "PRIVACY_CHECKS_DEMO_SINK": "127.0.0.1:0", "PRIVACY_CHECKS_DEMO_SMTP": "127.0.0.1:0",
}

BASE = """\
name: staging
base_url: https://api.example.com
allowed_hosts: [api.example.com]
auth:
  admin:
    type: bearer
    token: ${STAGING_TOKEN}
operations:
  read_subject:
    steps:
      - method: GET
        path: /users/{{ captured.user_id }}
        auth: admin
    gone_when: status == 404
  create_subject:
    steps:
      - method: POST
        path: /users
        auth: admin
        json: {email: "{{ subject.email }}"}
        capture: {user_id: json.id}
stores:
  - name: app
    url: postgresql+psycopg://app:${DB_PASSWORD}@db.example.com/app
"""
ENV = {"STAGING_TOKEN": "s3cret", "DB_PASSWORD": "pw"}


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def write(tmp_path: Path, text: str, name: str = "staging.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_profile_lints_clean():
    assert lint(DEMO, DEMO_ENV) == []


def test_demo_profile_loads_with_defaults():
    profile = load_profile(DEMO, DEMO_ENV)
    assert profile.name == "demo"
    assert profile.base_url == "https://127.0.0.1:1"
    # the demo's own address, and the host names of its website's analytics and vendors (suites/web)
    assert profile.allowed_hosts == ["127.0.0.1", "localhost", "*.mediapro.test", "*.adpartner.test",
                                     "*.replaytrack.test", "*.cookiematch.test"]
    assert profile.browser["first_party"] == ["127.0.0.1", "mediapro.test"]
    # the demo applies choices at once, so it bounds the sharing suites' propagation wait at 10 s
    assert profile.timeouts == {"request": 10.0, "operation": 60.0, "propagation": 10.0}
    assert profile.tls == {"ca_bundle": "/tmp/x/tls/ca.pem", "verify": True}
    assert profile.auth["admin"] == {"type": "bearer", "token": "t"}
    assert profile.auth["subject"]["token"] == "{{ captured.token }}"
    assert profile.operation("delete")["steps"][0]["expect"] == [202]
    assert profile.operation("no_such_operation") is None
    # The demo profile grows with the demo; only what this module guarantees is pinned here.
    assert profile.store("app")["url"] == "sqlite:////tmp/x/app.sqlite"
    assert profile.store("logs")["files"] == ["/tmp/x/logs/*.log*"]
    assert all(s["role"] in ("service_provider", "third_party", "sale") for s in profile.sinks)
    assert profile.subject["ip_header"] == "X-Forwarded-For"
    assert isinstance(profile.not_offered, dict)
    assert all("legal_basis" in e for e in profile.retention_exceptions)
    assert profile.adapter is None
    assert profile.path == DEMO.absolute()


BROKEN = [
    pytest.param(
        edit("method: GET", "method: FETCH"), ENV,
        ["staging.yaml: operations.read_subject.steps[0].method: 'FETCH' is not one of "
         "['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']"],
        id="wrong-method"),
    pytest.param(
        edit("name: staging\n", ""), ENV,
        ["staging.yaml: (root): missing required property 'name'"],
        id="missing-name"),
    pytest.param(
        BASE + "operation: {}\n", ENV,
        ["staging.yaml: (root): unknown property 'operation' (did you mean 'operations'?)"],
        id="unknown-top-level-key"),
    pytest.param(
        edit("        auth: admin\n", "        auth: admin\n        retries: 3\n"), ENV,
        ["staging.yaml: operations.read_subject.steps[0]: unknown property 'retries'"],
        id="unknown-step-key"),
    pytest.param(
        BASE, {"DB_PASSWORD": "pw"},
        ["staging.yaml: auth.admin.token: environment variable 'STAGING_TOKEN' is not set"],
        id="missing-env-var"),
    pytest.param(
        edit("token: ${STAGING_TOKEN}", "token: hunter2"), ENV,
        ["staging.yaml: auth.admin.token: secrets must come from environment variables (${VAR})"],
        id="literal-secret"),
    pytest.param(
        edit("https://api.example.com", "https://api.example.org"), ENV,
        ["staging.yaml: base_url: host 'api.example.org' is not in allowed_hosts"],
        id="base-url-host-not-allowed"),
    pytest.param(
        edit("allowed_hosts: [api.example.com]\n", ""), ENV,
        ["staging.yaml: (root): missing required property 'allowed_hosts'"],
        id="no-allowed-hosts"),
    pytest.param(
        edit("allowed_hosts: [api.example.com]", "allowed_hosts: []"), ENV,
        ["staging.yaml: allowed_hosts: list at least one host this run may contact"],
        id="empty-allowed-hosts"),
    pytest.param(
        edit("gone_when: status == 404", "gone_when: status =="), ENV,
        ["staging.yaml: operations.read_subject.gone_when: at column 10: expected a value after '=='"],
        id="bad-condition"),
    pytest.param(
        edit("postgresql+psycopg://app:", "postgresql+psycopg//app:"), ENV,
        ["staging.yaml: stores[0].url: store 'app': 'postgresql+psycopg//app:***@db.example.com/app' "
         "is not a valid SQLAlchemy URL (Could not parse SQLAlchemy URL)"],
        id="bad-store-url"),
    pytest.param(
        edit("        auth: admin", "        auth: admn"), ENV,
        ["staging.yaml: operations.read_subject.steps[0].auth: 'admn' is not declared in auth (declared: admin)"],
        id="auth-not-declared"),
    pytest.param(
        edit("allowed_hosts: [api.example.com]", "allowed_hosts: [api.example.com"), ENV,
        ["staging.yaml: line 4:5: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence)"],
        id="yaml-syntax-error"),
    pytest.param(
        "- name: staging\n- base_url: https://api.example.com\n", ENV,
        ["staging.yaml: (root): a profile is a mapping of sections (name, base_url, ...), found a list"],
        id="not-a-mapping"),
    pytest.param(
        "", ENV,
        ["staging.yaml: (root): a profile is a mapping of sections (name, base_url, ...), found an empty file"],
        id="empty-file"),
    pytest.param(
        BASE + "name: again\n", ENV,
        ["staging.yaml: line 25:1: invalid YAML: duplicate key 'name'"],
        id="duplicate-key"),
    pytest.param(
        edit("postgresql+psycopg://app:${DB_PASSWORD}@", "postgresql+psycopg://app:hunter2@"), ENV,
        ["staging.yaml: stores[0].url: store 'app': the password must come from an environment variable (${VAR})"],
        id="literal-store-password"),
    pytest.param(
        edit("      - method: GET\n", "      - metod: GET\n"), ENV,
        ["staging.yaml: operations.read_subject.steps[0]: a step needs 'method' (an HTTP request), "
         "'sql' (a statement on a store), 'command' (a program to run) or 'mail' (a message the SMTP capture "
         "received)"],
        id="step-of-no-kind"),
    pytest.param(
        edit("        auth: admin\n", "        auth: admin\n        json: {a: 1}\n        form: {a: 1}\n"), ENV,
        ["staging.yaml: operations.read_subject.steps[0]: a step sends one body: 'json', 'form' or 'body', not two"],
        id="json-and-form"),
    pytest.param(
        edit("        auth: admin\n", "        auth: admin\n        capture: {id: body.id, n: 'regex:('}\n"), ENV,
        ["staging.yaml: operations.read_subject.steps[0].capture.id: 'body.id' is not a capture source "
         "(json.<path>, header.<Name>, cookie.<name>, regex:<pattern> or status)",
         "staging.yaml: operations.read_subject.steps[0].capture.n: invalid regular expression: "
         "missing ), unterminated subpattern at position 0"],
        id="bad-capture-sources"),
    pytest.param(
        edit("        auth: admin\n", "        auth: admin\n        poll: {until: \"json.state = 'done'\", "
                                     "interval: 1, timeout: 30}\n"), ENV,
        ["staging.yaml: operations.read_subject.steps[0].poll.until: at column 12: unexpected character '='; "
         "use '==' to compare"],
        id="bad-poll-condition"),
    pytest.param(
        BASE + "sinks:\n  - {name: crm, role: partner, purpose: customer relationship management}\n", ENV,
        ["staging.yaml: sinks[0].role: 'partner' is not one of ['service_provider', 'third_party', 'sale']"],
        id="bad-sink-role"),
    pytest.param(
        edit("    steps:\n", "    steps:\n      - sql: \"UPDATE users SET x = 1 WHERE id = :id\"\n"
                             "        store: ap\n"), ENV,
        ["staging.yaml: operations.read_subject.steps[0].store: no store named 'ap' (declared: app)"],
        id="sql-step-unknown-store"),
    pytest.param(
        edit("    type: bearer\n    token: ${STAGING_TOKEN}\n", "    type: basic\n    token: ${STAGING_TOKEN}\n"),
        ENV,
        ["staging.yaml: auth.admin: missing required property 'username'",
         "staging.yaml: auth.admin: missing required property 'password'",
         "staging.yaml: auth.admin: unknown property 'token'"],
        id="auth-fields-of-another-type"),
    pytest.param(
        BASE + "not_offered:\n  delet: we never store anything\n  know: ''\n", ENV,
        ["staging.yaml: not_offered: unknown property 'delet' (did you mean 'delete'?)",
         "staging.yaml: not_offered.know: give the reason the target lawfully does not offer this right"],
        id="not-offered"),
    pytest.param(
        BASE + "retention_exceptions:\n  - {store: app, table: audit, legal_basis: tax law, purge_within: 2m}\n",
        ENV,
        ["staging.yaml: retention_exceptions[0]: missing required property 'reason'",
         "staging.yaml: retention_exceptions[0].purge_within: '2m' is not a duration such as 12h, 30d or 6w"],
        id="retention-exception"),
    pytest.param(
        BASE + "adapter: acme.adapters.Staging\n", ENV,
        ["staging.yaml: adapter: 'acme.adapters.Staging' is not of the form package.module:ClassName"],
        id="adapter-form"),
    pytest.param(
        edit("base_url: https://api.example.com", "base_url: ${API_URL}")
        + "timeouts: {request: 0}\n", ENV,
        ["staging.yaml: base_url: environment variable 'API_URL' is not set",
         "staging.yaml: timeouts.request: must be a number of seconds greater than 0"],
        id="several-problems-at-once"),
]


@pytest.mark.parametrize(("text", "env", "expected"), BROKEN)
def test_broken_profile_messages(tmp_path, text, env, expected):
    path = write(tmp_path, text)
    assert lint(path, env) == expected
    with pytest.raises(ProfileError) as caught:
        load_profile(path, env)
    assert caught.value.messages == expected
    assert str(caught.value) == "\n".join(expected)


def test_unreadable_file(tmp_path):
    missing = tmp_path / "staging.yaml"
    assert lint(missing, ENV) == ["staging.yaml: cannot read: No such file or directory"]
    with pytest.raises(ProfileError, match=r"^staging\.yaml: cannot read: No such file or directory$"):
        load_profile(missing, ENV)


def test_not_utf8(tmp_path):
    path = tmp_path / "staging.yaml"
    path.write_bytes(b"name: \xff\n")
    assert lint(path, ENV) == ["staging.yaml: cannot read: not UTF-8 text (byte 6)"]


def test_base_profile_is_valid(tmp_path):
    assert lint(write(tmp_path, BASE), ENV) == []


def test_substitution_happens_after_parsing(tmp_path):
    # A value that looks like YAML stays one string; it cannot add keys or change types.
    env = {**ENV, "STAGING_TOKEN": "x\nadapter: evil:Evil", "NAME": "[1, 2]"}
    profile = load_profile(write(tmp_path, edit("name: staging", "name: ${NAME}")), env)
    assert profile.name == "[1, 2]"
    assert profile.auth["admin"]["token"] == "x\nadapter: evil:Evil"
    assert profile.adapter is None


def test_dollar_dollar_escapes_a_literal_reference(tmp_path):
    text = edit("name: staging", "name: 'cost $$${NOT_A_VAR} and ${STAGING_TOKEN}'")
    assert load_profile(write(tmp_path, text), ENV).name == "cost $${NOT_A_VAR} and s3cret"


def test_escaped_reference_is_not_a_secret_from_the_environment(tmp_path):
    text = edit("token: ${STAGING_TOKEN}", "token: $${STAGING_TOKEN}")
    assert lint(write(tmp_path, text), ENV) == [
        "staging.yaml: auth.admin.token: secrets must come from environment variables (${VAR})"]


def test_malformed_references(tmp_path):
    text = edit("name: staging", "name: '${not a name} ${UNCLOSED'")
    assert lint(write(tmp_path, text), ENV) == [
        "staging.yaml: name: '${not a name}' is not a variable reference; names are letters, digits and _ "
        "(write $${ for a literal ${)",
        "staging.yaml: name: '${' is not closed; write ${NAME}, or $${ for a literal ${",
    ]


def test_lint_reports_every_missing_variable_of_the_demo():
    assert lint(DEMO, {"PRIVACY_CHECKS_DEMO_URL": "https://127.0.0.1:1"}) == [
        "demo.yaml: capture.bind: environment variable 'PRIVACY_CHECKS_DEMO_SINK' is not set",
        "demo.yaml: capture.smtp.bind: environment variable 'PRIVACY_CHECKS_DEMO_SMTP' is not set",
        "demo.yaml: tls.ca_bundle: environment variable 'PRIVACY_CHECKS_DEMO_DATA' is not set",
        "demo.yaml: transport.http_url: environment variable 'PRIVACY_CHECKS_DEMO_HTTP_URL' is not set",
        "demo.yaml: auth.admin.token: environment variable 'PRIVACY_CHECKS_DEMO_ADMIN_TOKEN' is not set",
        "demo.yaml: stores[0].url: environment variable 'PRIVACY_CHECKS_DEMO_DATA' is not set",
        "demo.yaml: stores[1].url: environment variable 'PRIVACY_CHECKS_DEMO_DATA' is not set",
        "demo.yaml: stores[2].url: environment variable 'PRIVACY_CHECKS_DEMO_DATA' is not set",
        "demo.yaml: stores[3].files[0]: environment variable 'PRIVACY_CHECKS_DEMO_DATA' is not set",
        "demo.yaml: stores[4].url: environment variable 'PRIVACY_CHECKS_DEMO_ADMIN_TOKEN' is not set",
        "demo.yaml: stores[4].url: environment variable 'PRIVACY_CHECKS_DEMO_REDIS' is not set",
        "demo.yaml: stores[5].endpoint_url: environment variable 'PRIVACY_CHECKS_DEMO_S3_URL' is not set",
        "demo.yaml: stores[5].secret_access_key: environment variable 'PRIVACY_CHECKS_DEMO_ADMIN_TOKEN' is not set",
        "demo.yaml: stores[6].endpoint_url: environment variable 'PRIVACY_CHECKS_DEMO_S3_URL' is not set",
        "demo.yaml: stores[6].secret_access_key: environment variable 'PRIVACY_CHECKS_DEMO_ADMIN_TOKEN' is not set",
        "demo.yaml: stores[7].lake[0]: environment variable 'PRIVACY_CHECKS_DEMO_DATA' is not set",
    ]


def test_env_defaults_to_process_environment(tmp_path, monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert load_profile(write(tmp_path, BASE)).auth["admin"]["token"] == "s3cret"


def test_keys_stay_text(tmp_path):
    text = BASE + ("sinks:\n  - name: crm\n    role: service_provider\n    purpose: CRM\n"
                   "    responses: {/crm/contacts: {status: 201, json: {ok: true}}}\n"
                   "    deletion_notice: \"method == 'DELETE' and path contains '/crm/'\"\n")
    text = edit("        auth: admin\n", "        auth: admin\n        headers: {On: yes, X-Id: 42}\n", text)
    profile = load_profile(write(tmp_path, text), ENV)
    assert profile.operation("read_subject")["steps"][0]["headers"] == {"On": True, "X-Id": 42}
    assert profile.sinks[0]["responses"]["/crm/contacts"]["status"] == 201


def test_runtime_templates_and_none_auth_are_accepted(tmp_path):
    text = BASE + """\
  - name: logs
    files: ["/var/log/app/*.log"]
    expect_subject: false
tls: {ca_bundle: certs/ca.pem, verify: true}
timeouts: {request: 5, propagation: 300}
subject:
  locale: de_DE
  fields: [full_name, email, department]
  strategies:
    department: {strategy: choice, choices: [Sales, Legal]}
capture: {bind: "127.0.0.1:8025", advertised_url: "http://127.0.0.1:8025"}
gpc: {supported: true}
not_offered: {portability: "the service keeps no user data beyond the account"}
retention_exceptions:
  - {store: app, table: invoices, column: email, field: email, form: sha256,
     legal_basis: "Cal. Rev. & Tax. Code 19530", reason: tax records, purge_within: 7w}
  - {store: logs, file: "/var/log/app/audit.log", legal_basis: security, reason: fraud detection}
adapter: acme.privacy.adapters:StagingAdapter
policy: policy.yaml
demo: {anything: [goes]}
"""
    text = edit("    gone_when: status == 404\n", """\
    gone_when: status == 404 or json.deleted == true
  login:
    steps:
      - method: POST
        path: /login
        auth: none
        form: {user: "{{ subject.email }}"}
        capture: {token: json.token, sid: cookie.session, loc: header.Location, code: status, r: "regex:id=(\\\\d+)"}
      - sql: "SELECT id FROM users WHERE email = :email"
        store: app
        params: {email: "{{ subject.email }}"}
        capture: {user_id: row.id}
      - command: [./export.sh, "{{ captured.user_id }}"]
        timeout: 60
        env: {EXPORT_DIR: "{{ output_dir }}"}
        capture: {job: json.job}
""", text)
    path = write(tmp_path, text)
    assert lint(path, ENV) == []
    profile = load_profile(path, ENV)
    assert profile.timeouts == {"request": 5.0, "operation": 120.0, "propagation": 300.0}
    assert profile.tls == {"ca_bundle": str(tmp_path / "certs" / "ca.pem"), "verify": True}
    assert profile.policy == tmp_path / "policy.yaml"
    assert profile.not_offered == {"portability": "the service keeps no user data beyond the account"}
    assert profile.retention_exceptions[0]["purge_within"] == "7w"
    assert profile.adapter == "acme.privacy.adapters:StagingAdapter"
    assert profile.store("logs")["expect_subject"] is False
    assert profile.gpc_supported is True


@pytest.mark.parametrize(("host", "expected"), [
    ("api.example.com", True),
    ("API.Example.com", True),
    ("a.b.example.net", True),
    ("example.net", False),
    ("evil-example.net", False),
    ("127.0.0.1", True),
    ("::1", True),
    ("example.com", False),
])
def test_host_allowed(host, expected):
    assert host_allowed(host, ["api.example.com", "*.example.net", "127.0.0.1", "[::1]"]) is expected


def test_other_absolute_urls_must_be_allowed_too(tmp_path):
    text = edit("      - method: GET\n        path: /users/{{ captured.user_id }}\n",
                "      - method: GET\n        path: https://cdn.example.org/users\n")
    text = edit("auth:\n", "auth:\n  sso:\n    type: oauth2_client_credentials\n"
                "    token_url: https://login.example.org/token\n    client_id: privacy-checks\n"
                "    client_secret: ${STAGING_TOKEN}\n", text)
    assert lint(write(tmp_path, text), ENV) == [
        "staging.yaml: auth.sso.token_url: host 'login.example.org' is not in allowed_hosts",
        "staging.yaml: operations.read_subject.steps[0].path: host 'cdn.example.org' is not in allowed_hosts",
    ]


def test_schema_is_valid_draft_2020_12():
    import json
    from importlib import resources

    from jsonschema import Draft202012Validator

    text = resources.files("privacy_checks").joinpath("schemas", "profile.schema.json").read_text("utf-8")
    Draft202012Validator.check_schema(json.loads(text))


def test_store_kinds_are_validated_by_their_own_keys_and_s3_secrets_come_from_the_environment(tmp_path):
    path = tmp_path / "stores.yaml"
    path.write_text(BASE.split("stores:")[0] + """\
stores:
  - name: cache
    url: redis://127.0.0.1:6379
    max_value_bytes: 0
  - name: bucket
    url: s3://my-bucket/prefix
    secret_access_key: written-in-the-file
    schemas: [public]
  - name: warehouse
    url: local[2]
  - name: lake
    lake: ["/data/*.parquet"]
    include_tables: ["*"]
retention_exceptions:
  - {store: cache, key: "profile:*", max_ttl: a week, legal_basis: x, reason: y}
""")
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    text = str(err.value)
    assert "stores[0].max_value_bytes" in text
    assert "stores[1].secret_access_key: secrets must come from environment variables" in text
    assert "stores[1]: unknown property 'schemas'" in text  # an SQL setting on an S3 store
    assert "stores[2]: a Spark store names the 'tables'" in text
    assert "stores[3]: unknown property 'include_tables'" in text
    assert "retention_exceptions[0].max_ttl" in text


def test_short_canary_options_are_checked(tmp_path):
    text = BASE + """\
subject:
  strategies:
    username: {strategy: canary, max_length: 13}
    email: {strategy: email, max_length: 25}
    phone: {strategy: phone, short: true}
    chat_username: {strategy: canary, short: true}
"""
    assert lint(write(tmp_path, text), ENV) == [
        "staging.yaml: subject.strategies.username.max_length: 13 is too short: strategy 'canary' needs at "
        "least 14 characters (with the short canary)",
        "staging.yaml: subject.strategies.email.max_length: 25 is too short: strategy 'email' needs at "
        "least 26 characters (with the short canary)",
        "staging.yaml: subject.strategies.phone.short: 'short' applies to strategies canary, email, password, content, "
        "not 'phone'",
    ]
