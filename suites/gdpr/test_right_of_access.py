"""Right of access — GDPR Art. 15.

MediaPRO's GDPR addendum: "If you ask us, we'll confirm whether we're processing your personal
information and, if necessary, provide you with a copy of that personal information (along
with certain other details)."

Art. 15(3) gives the subject a copy of the personal data undergoing processing; Art. 15(4):
that copy "shall not adversely affect the rights and freedoms of others" — a decoy subject
created alongside must not appear in it.
"""

import pytest

from privacy_checks.checks import access
from privacy_checks.flows.access import module_procedure, run_access


@pytest.fixture(scope="module")
def access_procedure(request, privacy_run):
    yield from module_procedure(request, privacy_run, "access", run_access, parts={"decoy"})


@pytest.mark.gdpr("Art.15(1)", "Art.15(3)")
@pytest.mark.check("gdpr.access.copy-complete")
def test_the_copy_holds_all_personal_data_processed(access_procedure):
    access.specific_pieces_complete(access_procedure)


@pytest.mark.gdpr("Art.15(4)")
@pytest.mark.check("gdpr.access.others-not-disclosed")
def test_the_copy_holds_no_other_persons_data(access_procedure):
    access.no_other_subject(access_procedure)
