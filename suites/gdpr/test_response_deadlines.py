"""Response time — GDPR Art. 12(3).

"The controller shall provide information on action taken on a request under Articles 15 to 22
to the data subject without undue delay and in any event within one month of receipt of the
request. That period may be extended by two further months where necessary ... The controller
shall inform the data subject of any such extension within one month of receipt of the request,
together with the reasons for the delay." Months are counted as Regulation (EEC, Euratom)
No 1182/71 counts them (privacy_checks/deadlines.py).

MediaPRO's policy lists the GDPR rights (access, rectification, erasure, restriction,
portability, objection) without a response time of its own; Art. 12(3) applies to each.

One procedure runs per module (flows/deadlines.py): a control request is filed, every request the
ledger holds open for GDPR is re-polled and judged (pending ones pass and are judged again by a
later run), and every request in the target's own log is judged by the same rule.
"""

import pytest

from privacy_checks.checks import deadlines


@pytest.fixture(scope="module")
def deadline_procedure(request, privacy_run):
    from privacy_checks.evidence import Evidence
    from privacy_checks.flows.deadlines import run_deadlines

    start = len(privacy_run.created)
    record = Evidence(f"{request.module.__name__}.deadline-procedure")
    outcome = run_deadlines(privacy_run, regime="gdpr", test_id=request.node.nodeid, evidence=record)
    yield outcome
    privacy_run.remove_created_since(start)


@pytest.mark.gdpr("Art. 12(3)")
@pytest.mark.check("gdpr.deadlines.respond-one-month")
def test_requests_are_answered_within_one_month_or_a_noticed_extension(deadline_procedure, evidence):
    deadlines.answered_in_time(deadline_procedure, evidence)
