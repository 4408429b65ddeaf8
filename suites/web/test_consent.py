"""Consent before tracking — GDPR Art. 6(1)(a), Art. 7; ePrivacy Directive Art. 5(3).

MediaPRO's cookie banner: "This website uses cookies to enhance your experience and allow us
to see how the site is used. The cookies cannot identify you."

Where the profile says consent is required (`browser.consent.required: true`), a visitor who
has not chosen yet signs up and browses with the banner shown (its absence is an error), then
rejects and browses again. No page may contact a domain outside the first party and its
declared service providers, and no such domain may set a cookie, before the visitor accepts or
after it rejects. Each finding names the page, the request, its domain and what it sent (which of
the visitor's identifiers, or none). Positive control: in the reference visit, which accepts,
third-party requests do happen, and the pages loaded after a rejection (the browse journey and
the barrier page) make some of them. Barrier: a later first-party page fetches itself, before the
choice and after it.
"""

import pytest

from privacy_checks.checks import web
from privacy_checks.flows import web as flow


@pytest.fixture(scope="module")
def consent_visit(privacy_run, request, reference_visit):
    yield from flow.procedure(privacy_run, request, flow.run_consent, reference=reference_visit)


@pytest.mark.gdpr("Art. 6(1)(a)", "Art. 7")
@pytest.mark.eprivacy("Art. 5(3)")
@pytest.mark.check("web.consent.nothing-before-consent")
def test_no_third_party_request_or_cookie_before_consent_or_after_a_rejection(consent_visit):
    web.nothing_before_consent(consent_visit)
