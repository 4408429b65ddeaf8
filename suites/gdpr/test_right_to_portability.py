"""Right to data portability — GDPR Art. 20.

MediaPRO's GDPR addendum: "you have the right, in certain circumstances, to obtain personal
information you've provided us with (in a structured, commonly used and machine readable
format) and to reuse it elsewhere".

Every rendition the profile declares (export.link and export.renditions) is downloaded and
read strictly: JSON, JSON Lines, CSV, XML, or zip archives of these, valid against the
export schema, with the subject's data inside the structured values. HTML, PDF and plain
text are for people, not machines.
"""

import pytest

from privacy_checks.checks import access
from privacy_checks.flows.access import module_procedure, run_access


@pytest.fixture(scope="module")
def access_procedure(request, privacy_run):
    yield from module_procedure(request, privacy_run, "portability", run_access, parts={"renditions"})


@pytest.mark.gdpr("Art.20(1)")
@pytest.mark.check("gdpr.portability.machine-readable")
def test_provided_data_comes_in_a_structured_commonly_used_machine_readable_format(access_procedure):
    access.machine_readable(access_procedure)
