"""Secrets and personal data at rest — Cal. Civ. Code §1798.100(e) and §1798.81.5
(reasonable security); GDPR Art. 32(1)(a) (pseudonymisation and encryption).

MediaPRO's policy: "All information you provide to us is stored on our secure servers behind
firewalls. Any payment transactions and any information deemed sensitive shall be encrypted
using SSL technology." A password is the most sensitive thing a user gives: it must be kept
only as a salted password hash, never in any form the sweep can recover or recognise (exact,
case-folded, URL-encoded, base64, unsalted md5/sha1/sha256). Logs must carry no personal data.

One procedure per module: a subject acts; positive control (the sweep sees the subject in every
store that must hold it); barrier (a control subject acting afterwards is visible in the same
stores, and the logs have grown past the subject's operations); then one sweep is judged.
"""

import pytest

from privacy_checks.checks import transport
from privacy_checks.flows.transport import observe_traffic


@pytest.fixture(scope="module")
def at_rest(request, privacy_run):
    # stores and logs, not TLS: this procedure runs on a plain-http target too
    yield from privacy_run.procedure(request, observe_traffic, label="at-rest", at_rest=True)


@pytest.mark.ccpa("1798.100(e)", "1798.81.5")
@pytest.mark.gdpr("32(1)(a)")
@pytest.mark.check("transport.rest.password-hashed")
def test_password_is_never_stored_or_logged_recoverably(at_rest, evidence):
    transport.password_hashed(at_rest, evidence)


@pytest.mark.ccpa("1798.100(e)", "1798.81.5")
@pytest.mark.gdpr("32(1)(a)")
@pytest.mark.check("transport.rest.no-personal-data-in-logs")
def test_logs_carry_no_personal_data(at_rest, evidence):
    transport.no_personal_data_in_logs(at_rest, evidence)
