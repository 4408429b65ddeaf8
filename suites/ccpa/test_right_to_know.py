"""Right to know — Cal. Civ. Code §1798.110, §1798.130; 11 CCR §7024, §7060(a), §7061(a).

MediaPRO's California addendum: "Once we receive and confirm your verifiable consumer request
... we will disclose to you: The categories of personal information we collected about you.
... The specific pieces of personal information we collected about you (also called a data
portability request)." — "You may only make a verifiable consumer request for access or data
portability twice within a 12-month period." — "We cannot respond to your request or provide
you with personal information if we cannot verify your identity" — "For data portability
requests, we will select a format to provide your personal information that is readily
useable and should allow you to transmit the information from one entity to another entity
without hindrance."

One access procedure runs per module (flows/access.py: subject and decoy, positive control,
verified request, decoy's own export, wrong-code and other-session attempts, a second request);
each test below judges one promise of it.
"""

import pytest

from privacy_checks.checks import access
from privacy_checks.flows.access import module_procedure, run_access


@pytest.fixture(scope="module")
def access_procedure(request, privacy_run):
    yield from module_procedure(request, privacy_run, "know", run_access)


@pytest.mark.ccpa("1798.110(a)(5)", "1798.110(b)")
@pytest.mark.ccpa_regs("7024")
@pytest.mark.check("ccpa.know.specific-pieces-complete")
def test_export_holds_every_specific_piece_collected(access_procedure):
    access.specific_pieces_complete(access_procedure)


@pytest.mark.ccpa("1798.110(a)(1)", "1798.110(b)")
@pytest.mark.check("ccpa.know.categories-disclosed")
def test_export_lists_every_category_the_subject_is_held_under(access_procedure):
    access.categories_disclosed(access_procedure)


@pytest.mark.ccpa_regs("7024(d)")
@pytest.mark.check("ccpa.know.nothing-forbidden-disclosed")
def test_export_never_discloses_the_password_or_other_7024d_items(access_procedure):
    access.nothing_forbidden_disclosed(access_procedure)


@pytest.mark.ccpa("1798.100(e)", "1798.110")
@pytest.mark.check("ccpa.know.only-the-requesters-data")
def test_export_holds_no_other_persons_data(access_procedure):
    access.no_other_subject(access_procedure)


@pytest.mark.ccpa("1798.130(a)(3)(B)(iii)")
@pytest.mark.check("ccpa.know.machine-readable")
def test_specific_pieces_come_in_a_structured_machine_readable_format(access_procedure):
    access.machine_readable(access_procedure)


@pytest.mark.ccpa("1798.110(b)")
@pytest.mark.ccpa_regs("7024(a)", "7060(a)", "7061(a)")
@pytest.mark.check("ccpa.know.verified-requester-only")
def test_unverified_requests_get_none_of_the_subjects_data(access_procedure):
    access.verified_requester_only(access_procedure)


@pytest.mark.ccpa("1798.130(b)")
@pytest.mark.check("ccpa.know.second-request-honoured")
def test_a_second_access_request_within_12_months_is_honoured(access_procedure):
    access.second_request_honoured(access_procedure)
