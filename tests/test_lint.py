"""Lint catches what a run would reject: names a template or condition cannot have, with the fix.

Every case here is a profile that loaded before and failed only in the middle of a run; each
now gives one line naming the file, the field and what to write instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from privacy_checks.profile import lint, load_profile
from privacy_checks.subjects import SubjectFactory

ROOT = Path(__file__).resolve().parent.parent

BASE = """\
name: shop
base_url: https://shop.example.com/api/v2
allowed_hosts: [shop.example.com]
auth:
  admin: {type: bearer, token: "${ADMIN_TOKEN}"}
  user: {type: bearer, token: "{{ captured.token }}"}
subject:
  fields: [full_name, email, username, password]
operations:
  create_subject:
    steps:
      - method: POST
        path: /customers
        auth: admin
        json: {name: "{{ subject.full_name }}", email: "{{ subject.email }}"}
        capture: {user_id: json.id}
  login:
    steps:
      - method: POST
        path: /login
        json: {username: "{{ subject.username }}", password: "{{ subject.password }}"}
        capture: {token: json.token}
  read_subject:
    steps:
      - method: GET
        path: /customers/{{ captured.user_id }}
        auth: admin
        expect: [200, 404]
    gone_when: status == 404
  delete:
    steps:
      - method: POST
        path: /customers/{{ captured.user_id }}/erase
        auth: user
        capture: {request_id: json.id}
stores:
  - name: db
    url: sqlite:////tmp/shop.sqlite
"""
ENV = {"ADMIN_TOKEN": "t0k"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    return lint(write(tmp_path, text), ENV)


def edit(old: str, new: str, text: str = BASE) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_the_base_profile_is_clean(tmp_path):
    assert problems(tmp_path, BASE) == []


CASES = [
    pytest.param(
        edit("path: /customers/{{ captured.user_id }}\n", "path: /customers/{{ subjekt.user_id }}\n"),
        "shop.yaml: operations.read_subject.steps[0].path: '{{ subjekt.user_id }}': unknown template name "
        "'subjekt'; names are subject, captured, params, uuid, now, output_dir, target, decoy, control "
        "(did you mean '{{ captured.user_id }}'?)",
        id="unknown-root"),
    pytest.param(
        edit("path: /customers/{{ captured.user_id }}\n", "path: /customers/{{ subject.user_id }}\n"),
        "shop.yaml: operations.read_subject.steps[0].path: '{{ subject.user_id }}': 'user_id' is not a subject "
        "field (fields: full_name, email, username, password; add others to subject.extra_fields) "
        "(did you mean '{{ captured.user_id }}'?)",
        id="captured-value-named-as-field"),
    pytest.param(
        edit("json: {name: \"{{ subject.full_name }}\"", "json: {name: \"{{ subject.fullname }}\""),
        "shop.yaml: operations.create_subject.steps[0].json.name: '{{ subject.fullname }}': 'fullname' is not a "
        "subject field (fields: full_name, email, username, password; add others to subject.extra_fields) "
        "(did you mean 'full_name'?)",
        id="misspelt-field"),
    pytest.param(
        edit("path: /customers/{{ captured.user_id }}\n        auth: admin\n        expect",
             "path: /customers/{{ captured.request_id }}\n        auth: admin\n        expect"),
        "shop.yaml: operations.read_subject.steps[0].path: '{{ captured.request_id }}': no earlier step captures "
        "'request_id' when the suites run 'read_subject' (before it: create_subject, capturing user_id); delete "
        "captures it, but does not always run before 'read_subject'",
        id="captured-by-an-operation-that-runs-later"),
    pytest.param(
        edit("        capture: {request_id: json.id}\n",
             "        capture: {request_id: json.id}\n      - method: GET\n"
             "        path: /erasures/{{ captured.erasure }}\n"
             "      - method: GET\n        path: /erasures/x\n        capture: {erasure: json.id}\n"),
        "shop.yaml: operations.delete.steps[1].path: '{{ captured.erasure }}': no earlier step captures "
        "'erasure' when the suites run 'delete' (before it: create_subject, capturing user_id); step 3 of this "
        "operation captures it, after this one",
        id="captured-by-a-later-step"),
    pytest.param(
        edit("stores:\n", "  cleanup:\n    steps:\n      - {method: DELETE, path: \"/me?t={{ captured.token }}\"}\n"
                           "stores:\n"),
        "shop.yaml: operations.cleanup.steps[0].path: '{{ captured.token }}': no earlier step captures 'token' "
        "when the suites run 'cleanup' (before it: create_subject, capturing user_id); it runs from the ledger in "
        "`privacy-checks cleanup`, and the ledger never keeps secrets (tokens, codes, passwords)",
        id="cleanup-sees-only-the-ledger"),
    pytest.param(
        edit("    gone_when: status == 404\n", "    gone_when: row.n == 0\n"),
        "shop.yaml: operations.read_subject.gone_when: at column 1: 'row' is not a name the result of a HTTP step "
        "has (names: status, headers, json, text, url, method, path) (did you mean 'json.n'?)",
        id="sql-name-after-http"),
    pytest.param(
        edit("""      - method: GET
        path: /customers/{{ captured.user_id }}
        auth: admin
        expect: [200, 404]
    gone_when: status == 404""", """      - sql: "SELECT count(*) AS n FROM customer WHERE id = :id"
        store: db
        params: {id: "{{ captured.user_id }}"}
    gone_when: json.n == 0 and status == 0"""),
        ["shop.yaml: operations.read_subject.gone_when: at column 1: 'json' is not a name the result of an SQL "
         "step has (names: row, rows, rowcount) (did you mean 'row.n'?)",
         "shop.yaml: operations.read_subject.gone_when: at column 17: 'status' is not a name the result of an SQL "
         "step has (names: row, rows, rowcount) (did you mean 'rowcount'?)"],
        id="http-names-after-sql"),
    pytest.param(
        edit("""      - method: GET
        path: /customers/{{ captured.user_id }}
        auth: admin
        expect: [200, 404]
    gone_when: status == 404""", """      - command: [./bin/lookup, "{{ captured.user_id }}"]
        timeout: 30
    gone_when: "'not found' in text\""""),
        "shop.yaml: operations.read_subject.gone_when: at column 16: 'text' is not a name the result of a command "
        "step has (names: status, stdout, stderr, json, output_dir) (did you mean 'stdout'?)",
        id="http-name-after-command"),
    pytest.param(
        edit("        auth: admin\n        expect", "        auth: admin\n        query: {dir: \"{{ output_dir }}\"}\n"
                                                   "        expect"),
        "shop.yaml: operations.read_subject.steps[0].query.dir: '{{ output_dir }}': only a command step has an "
        "output directory; steps after it use '{{ captured.output_dir }}'",
        id="output-dir-outside-a-command"),
    pytest.param(
        BASE + "export:\n  delivery: files\n",
        "shop.yaml: export: export.delivery is 'files' but export.files is missing: give the path the command "
        "step wrote, e.g. files: \"{{ captured.output_dir }}/export.json\"",
        id="files-delivery-without-files"),
    pytest.param(
        edit("  fields: [full_name, email, username, password]\n",
             "  fields: [full_name, email, username, password]\n  strategies:\n"
             "    loyalty_number: {strategy: fixed, value: '0000'}\n"),
        "shop.yaml: subject.strategies.loyalty_number: 'loyalty_number' is not a subject field (fields: full_name, "
        "email, username, password); add it to extra_fields",
        id="strategy-for-an-undeclared-field"),
    pytest.param(
        edit("        expect: [200, 404]\n", "        expect: [200, 404]\n        query: {x: \"{{ params.x }}\"}\n"),
        "shop.yaml: operations.read_subject.steps[0].query.x: '{{ params.x }}': the suites give 'read_subject' no "
        "params (operations given params: correct, update_profile, file_request, read_request, "
        "read_acknowledgement)",
        id="params-where-none-are-given"),
    pytest.param(
        edit("        expect: [200, 404]\n", "        expect: [200, 404]\n        as: decoy\n"),
        "shop.yaml: operations.read_subject.steps[0].as: 'read_subject' runs with one subject; only 'interact' "
        "runs with the decoy",
        id="as-decoy-outside-interact"),
    pytest.param(
        edit("        expect: [200, 404]\n", "        expect: [200, 404]\n        headers: {Origin: \"{{ target.orign }}\"}\n"),
        "shop.yaml: operations.read_subject.steps[0].headers.Origin: '{{ target.orign }}': the target offers "
        "target.origin, target.base_url (did you mean 'target.origin'?)",
        id="target-name"),
    pytest.param(
        edit("auth: user\n", "auth: user\n        json: {who: \"{{ decoy.email }}\"}\n"),
        "shop.yaml: operations.delete.steps[0].json.who: '{{ decoy.email }}': 'delete' runs with one subject; "
        "only 'interact' names the other subject (decoy, also called control)",
        id="decoy-outside-interact"),
    pytest.param(
        edit("path: /customers/{{ captured.user_id }}\n", "path: /customers/{{ captured.user id }}\n"),
        "shop.yaml: operations.read_subject.steps[0].path: '{{ captured.user id }}' is not a template: a name is "
        "letters, digits and _ joined by dots, such as {{ subject.email }}",
        id="not-a-template"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_each_runtime_mistake_is_one_line_with_the_fix(tmp_path, text, expected):
    assert problems(tmp_path, text) == ([expected] if isinstance(expected, str) else expected)


def test_a_bearer_token_a_login_captures_is_available_everywhere(tmp_path):
    # `auth: user` in delete needs captured.token, which no earlier step of delete captures:
    # the run logs in first (target.auth_headers), and lint knows it.
    assert problems(tmp_path, BASE) == []
    without_login = BASE.replace("  login:\n", "  sign_in:\n")
    assert problems(tmp_path, without_login) == [
        "shop.yaml: operations.delete.steps[0].auth: auth 'user' token: '{{ captured.token }}': no earlier step "
        "captures 'token' when the suites run 'delete' (before it: create_subject, capturing user_id); sign_in "
        "captures it, but does not always run before 'delete'"]


def test_an_export_link_sees_what_the_export_operation_captured(tmp_path):
    text = edit("stores:\n", """\
  export:
    steps:
      - {method: POST, path: /exports, auth: user, capture: {export_id: json.id}}
export:
  link: /exports/{{ captured.export_id }}/download
stores:
""")
    assert problems(tmp_path, text) == []
    assert problems(tmp_path, text.replace("captured.export_id }}/download", "captured.job }}/download")) == [
        "shop.yaml: export.link: '{{ captured.job }}': no earlier step captures 'job' when the suites run "
        "'export' (before it: create_subject, capturing user_id)"]


def test_extra_fields_alone_make_a_field_with_its_own_value(tmp_path):
    text = edit("  fields: [full_name, email, username, password]\n",
                "  fields: [full_name, email, username, password]\n  extra_fields: [work_email, loyalty_number]\n"
                "  strategies:\n    work_email: {strategy: email}\n    loyalty_number: {strategy: canary}\n"
                "    login_email: {same_as: email}\n")
    text = edit("json: {name: \"{{ subject.full_name }}\"", "json: {work: \"{{ subject.work_email }}\", "
                "card: \"{{ subject.loyalty_number }}\", name: \"{{ subject.full_name }}\"", text)
    assert problems(tmp_path, text) == [
        "shop.yaml: subject.strategies.login_email: 'login_email' is not a subject field (fields: full_name, email, "
        "username, password, work_email, loyalty_number); add it to extra_fields"]
    text = text.replace("extra_fields: [work_email, loyalty_number]", "extra_fields: [work_email, loyalty_number, "
                                                                      "login_email]")
    profile = load_profile(write(tmp_path, text), ENV)
    spec = profile.subject
    subject = SubjectFactory(seed="s", nonce="n", fields=spec["fields"], extra_fields=spec["extra_fields"],
                             strategies=spec["strategies"]).build("t::x")
    assert list(subject.fields) == ["full_name", "email", "username", "password", "work_email", "loyalty_number",
                                    "login_email"]
    # Every field holds its own value (a second email is a second canary) unless the profile
    # says it is the same.
    assert subject.fields["work_email"] != subject.fields["email"]
    assert subject.fields["work_email"].endswith("@example.com")
    assert subject.canary not in subject.fields["work_email"]
    assert subject.fields["login_email"] == subject.fields["email"]
    values = [v for k, v in subject.fields.items() if k != "login_email"]
    assert len(set(values)) == len(values)
    assert subject.strong_fields() == list(subject.fields)


def test_the_lint_command_prints_each_problem_and_exits_2(tmp_path):
    path = write(tmp_path, edit("path: /customers/{{ captured.user_id }}\n", "path: /customers/{{ subjekt.id }}\n"))
    proc = subprocess.run([sys.executable, "-m", "privacy_checks.cli", "lint", str(path)], capture_output=True,
                          text=True, env={"ADMIN_TOKEN": "x", "PATH": "/usr/bin:/bin"}, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "shop.yaml: operations.read_subject.steps[0].path: '{{ subjekt.id }}': unknown template name 'subjekt'; "
        "names are subject, captured, params, uuid, now, output_dir, target, decoy, control "
        "(did you mean '{{ subject.id }}'?)"]


def test_a_retention_form_no_finding_carries_is_rejected_listing_every_form(tmp_path):
    """A misspelt form would make the exception silently never match; the valid names come from
    the sweep's own code (text forms, every typed strategy's forms, linked row)."""
    from privacy_checks.observe.forms import ALL_FORMS, LINKED_ROW
    from privacy_checks.observe.typed import forms_by_kind

    def with_form(form: str) -> str:
        return BASE + (f"retention_exceptions:\n  - {{store: db, table: logins, field: moment, form: \"{form}\", "
                       "legal_basis: fraud prevention, reason: login times kept 30 days}\n")

    assert problems(tmp_path, with_form("epoch ms")) == []
    assert problems(tmp_path, with_form("last four")) == problems(tmp_path, with_form("linked row")) == []
    [message] = problems(tmp_path, with_form("epoch_ms"))
    assert message.startswith("shop.yaml: retention_exceptions[0].form: 'epoch_ms' is not a form the sweep "
                              "reports, so the exception would never match (did you mean 'epoch ms'?); forms: ")
    listed = message.split("; forms: ", 1)[1]
    for form in [*ALL_FORMS, *(f for forms in forms_by_kind().values() for f in forms), LINKED_ROW]:
        assert form in listed, form
    assert "timestamp timestamp, timestamp (ms)" in listed and "card_number exact, spaced, dashed" in listed


def test_docs_list_every_typed_form_under_retention_exceptions():
    """docs/profile.md names, per strategy, the forms a retention exception may allow."""
    from privacy_checks.observe.typed import forms_by_kind

    docs = (ROOT / "docs" / "profile.md").read_text(encoding="utf-8")
    section = docs.split("### retention_exceptions", 1)[1].split("\n### ", 1)[0]
    for kind, forms in forms_by_kind().items():
        line = next((ln for ln in section.splitlines() if ln.startswith(f"| `{kind}`")), None)
        assert line is not None, kind
        assert [f.strip("` ") for f in line.split("|")[2].split(",")] == list(forms), line
