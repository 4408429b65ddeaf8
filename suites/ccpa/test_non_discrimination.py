"""No retaliation for exercising a right — Cal. Civ. Code §1798.125(a)(1)(B), (C).

MediaPRO: "We will not discriminate against you for exercising any of your CCPA rights.
Unless permitted by the CCPA, we will not: ... Charge you different prices or rates for goods
or services ... Provide you a different level or quality of goods or services."

Positive control: two fresh subjects get the same quote (the profile's `price` operation);
then one opts out, and both are quoted again. Values that only identify a subject (its id,
its own fields) are not differences.
"""

import pytest

from privacy_checks.checks import sharing
from privacy_checks.flows import sharing as flow


@pytest.fixture(scope="module")
def quotes(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_non_discrimination)


@pytest.mark.ccpa("1798.125(a)(1)(B)", "1798.125(a)(1)(C)")
@pytest.mark.check("ccpa.non-discrimination.same-price-and-service")
def test_an_opted_out_subject_gets_the_same_price_and_service_level(quotes):
    sharing.same_price_and_service(quotes)
