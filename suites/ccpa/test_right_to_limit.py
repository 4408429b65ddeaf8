"""Right to limit use and disclosure of sensitive personal information — Cal. Civ. Code §1798.121(b).

Sensitive personal information (Cal. Civ. Code §1798.140(ae)) includes a driver's licence
number ((ae)(1)(A)), an account log-in with its password ((ae)(1)(B)) and a precise geolocation
((ae)(1)(C)). After a limit request the subject's sensitive fields (per
privacy_checks/data/field_categories.yaml) must stop reaching third parties; the rest of its data
may still flow. (The demo sends a driver's licence number to its marketing partner: category B,
which MediaPRO's addendum lists as disclosed, unlike geolocation, which it marks not collected.)
"""

import pytest

from privacy_checks.checks import sharing
from privacy_checks.flows import sharing as flow


@pytest.fixture(scope="module")
def limit_procedure(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_choice, kind="limit")


@pytest.mark.ccpa("1798.121(b)")
@pytest.mark.check("ccpa.limit.sensitive-not-disclosed")
def test_after_a_limit_request_sensitive_fields_no_longer_reach_third_parties(limit_procedure):
    sharing.sharing_stops(limit_procedure)
