"""The reference visit: one ordinary visitor (consent accepted where asked, no GPC, no opt-out)
signs up and browses in real headless Chromium, once per run of this package.

Form data and cookies are judged on it (test_form_data.py, test_cookies.py), and it is the
positive control of the GPC, opt-out and consent checks: a choice can only be shown to stop
what an ordinary visit is seen to send.
"""

import pytest

from privacy_checks.flows import web as flow


@pytest.fixture(scope="package")
def reference_visit(privacy_run, request):
    yield from flow.procedure(privacy_run, request, flow.run_reference_visit)
