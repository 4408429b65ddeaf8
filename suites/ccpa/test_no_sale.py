""""We do not sell your data" — and nothing goes to a recipient the profile does not declare.

MediaPRO: "MediaPRO does not sell your data which may trigger additional opt-out requirements
in the U.S. and abroad." Its California addendum: "In the preceding twelve (12) months, Company had not sold
personal information."

A subject and a control act; once a later delivery for the control has reached every
recipient the subject reached (the barrier), everything every recipient received in this
run is read: no recipient declared as a `sale` may hold any subject's canary, in any form,
and any canary reaching an undeclared recipient (a path no sink declares) fails the run's
sharing checks. When a profile declares no sale recipient, the no-sale check relies on the
undeclared-recipient rule and says so.
"""

import pytest

from privacy_checks.checks import sharing
from privacy_checks.flows import sharing as flow


@pytest.fixture(scope="module")
def census(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_census)


@pytest.mark.ccpa("1798.120", "1798.115")
@pytest.mark.check("ccpa.sale.nothing-sold")
def test_no_subject_data_reaches_a_buyer(census):
    sharing.no_sale(census)


@pytest.mark.ccpa("1798.100(a)(1)", "1798.115")
@pytest.mark.check("ccpa.share.no-undeclared-recipient")
def test_no_subject_data_reaches_a_recipient_the_profile_does_not_declare(census):
    sharing.no_undeclared_recipient(census)
