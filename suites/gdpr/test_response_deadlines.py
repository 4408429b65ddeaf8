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
    from privacy_checks.flows.deadlines import run_deadlines

    # A subject whose request is still pending stays in the ledger (awaiting_request) for a later run.
    yield from privacy_run.procedure(request, run_deadlines, regime="gdpr")


@pytest.mark.gdpr("Art. 12(3)")
@pytest.mark.check("gdpr.deadlines.respond-one-month")
def test_requests_are_answered_within_one_month_or_a_noticed_extension(deadline_procedure, evidence):
    deadlines.answered_in_time(deadline_procedure, evidence)
