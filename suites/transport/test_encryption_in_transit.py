"""Encryption in transit — Cal. Civ. Code §1798.100(e) and §1798.81.5 (reasonable security);
GDPR Art. 32(1)(a) (encryption of personal data).

MediaPRO's policy: "Any payment transactions and any information deemed sensitive shall be
encrypted using SSL technology."

Read-only checks probe the target's own endpoints (plain http, HSTS, TLS versions, the
certificate). The others judge one traffic procedure per module: a subject acts, a control
subject acting afterwards is the barrier, and then every exchange, cookie and delivery the
subject caused is examined. A target with no https fails every check here for that one reason.
"""

import pytest

from privacy_checks.checks import transport
from privacy_checks.flows.transport import observe_traffic

# every check here judges reasonable security of personal data in transit
pytestmark = [pytest.mark.ccpa("1798.100(e)", "1798.81.5"), pytest.mark.gdpr("32(1)(a)")]


@pytest.fixture(scope="module")
def traffic(request, privacy_run):
    yield from privacy_run.procedure(request, observe_traffic, label="traffic")


@pytest.mark.check("transport.https.personal-data-encrypted")
def test_every_operation_carrying_personal_data_uses_https(traffic, evidence):
    transport.personal_data_over_https(traffic, evidence)


@pytest.mark.read_only
@pytest.mark.check("transport.http.redirect-only")
def test_plain_http_only_redirects_to_https(privacy_profile, evidence):
    transport.http_only_redirects(privacy_profile, evidence)


@pytest.mark.read_only
@pytest.mark.check("transport.https.hsts")
def test_https_answers_carry_hsts_for_at_least_a_year(privacy_profile, evidence):
    transport.hsts_one_year(privacy_profile, evidence)


@pytest.mark.read_only
@pytest.mark.check("transport.tls.legacy-versions-refused")
def test_tls_1_0_and_1_1_are_refused(privacy_profile, evidence):
    transport.legacy_tls_refused(privacy_profile, evidence)


@pytest.mark.read_only
@pytest.mark.check("transport.tls.certificate-trusted")
def test_certificate_is_valid_for_the_host_and_chains_to_the_configured_ca(privacy_profile, evidence):
    transport.certificate_trusted(privacy_profile, evidence)


@pytest.mark.check("transport.cookies.secure")
def test_session_cookies_are_secure_httponly_and_samesite(traffic, privacy_profile, evidence):
    transport.cookies_secure(traffic, privacy_profile, evidence)


@pytest.mark.check("transport.urls.no-personal-data")
def test_no_personal_data_in_urls_location_or_referer(traffic, evidence):
    transport.no_personal_data_in_urls(traffic, evidence)


@pytest.mark.check("transport.recipients.https")
def test_deliveries_to_recipients_use_https(traffic, privacy_profile, evidence):
    transport.deliveries_over_https(traffic, privacy_profile, evidence)
