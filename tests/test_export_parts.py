"""An export made of several requests: judged together for completeness, each part for format.

The demo's profile is changed the way a real tracker's would be: the subject's account and the
data export come from two requests (`export_part`), read as `export.delivery: response`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = (ROOT / "privacy_checks" / "profiles" / "demo.yaml").read_text()
DATA_PART = """\
      - method: GET
        path: /api/privacy-requests/{{ captured.request_id }}/export
        query: {format: json}
        auth: subject
        export_part: data
"""
ACCOUNT_PART = """\
      - method: GET
        path: /api/users/{{ captured.user_id }}
        auth: subject
        export_part: account
"""


def _profile(tmp_path: Path, extra_part: str = "", parts: str = DATA_PART + ACCOUNT_PART) -> Path:
    marker = "        capture:\n          access_status: json.status\n"
    head, tail = DEMO.split(marker)
    text = head + marker + parts + extra_part + tail
    text = text.replace("export:\n  delivery: link\n", "export:\n  delivery: response\n")
    text = text.replace("  categories: categories\n", "  categories: data.categories\n")
    path = tmp_path / "parts.yaml"
    path.write_text(text)
    return path


def test_an_export_of_several_requests_is_judged_as_one(tmp_path, suite_runner, standalone_demo):
    run = suite_runner("suites/ccpa/test_right_to_know.py",
                       args=("--target", str(_profile(tmp_path))), env=standalone_demo)
    assert run.returncode == 0, run.stdout[-3000:]
    assert set(run.outcomes().values()) == {"passed"}, run.outcomes()


def test_each_part_must_be_machine_readable(tmp_path, suite_runner, standalone_demo):
    page = """\
      - method: GET
        path: /privacy-policy
        export_part: notice
"""
    run = suite_runner("suites/ccpa/test_right_to_know.py",
                       args=("--target", str(_profile(tmp_path, page))), env=standalone_demo)
    assert run.results["ccpa.know.machine-readable"]["outcome"] == "failed", run.outcomes()
    message = run.message("ccpa.know.machine-readable")
    assert "rendition part notice at notice is not structured, machine-readable data (text/html" in message, message
    assert "part data" not in message and "part account" not in message
    assert run.results["ccpa.know.specific-pieces-complete"]["outcome"] == "passed", run.outcomes()


def test_a_part_the_profile_leaves_out_makes_the_export_incomplete(tmp_path, suite_runner, standalone_demo):
    """The failing side of a several-request export: with only the account part, the data part's
    places (the subject's activity, messages, tickets) are missing, and completeness says where."""
    path = _profile(tmp_path, parts=ACCOUNT_PART)
    run = suite_runner("suites/ccpa/test_right_to_know.py", args=("--target", str(path)), env=standalone_demo)
    assert run.results["ccpa.know.specific-pieces-complete"]["outcome"] == "failed", run.outcomes()
    message = run.message("ccpa.know.specific-pieces-complete")
    assert "the export leaves out the subject's data held in" in message and "app: table tickets" in message, message
    assert "app: table messages" in message, message
