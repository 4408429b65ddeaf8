"""What a business collects reaches its records — the basis every other check stands on.

Cal. Civ. Code §1798.100 (general duties of businesses that collect personal information).
This is the foundation's end-to-end check: a subject created through the target's own
interface can be read back, and its canaries are found in the declared stores. If this
fails, no absence claim elsewhere in the suites could mean anything.
"""

import pytest

from privacy_checks.checks import collection


@pytest.mark.ccpa("1798.100")
@pytest.mark.check("ccpa.collect.subject-reaches-declared-stores")
def test_subject_created_through_the_api_is_read_back_and_found_in_the_declared_stores(
        privacy_run, subject, evidence):
    collection.check_subject_reaches_stores(privacy_run, subject, evidence)
