"""What a visitor types stays with the business — Cal. Civ. Code §1798.100(e); GDPR Art. 5(1)(b).

MediaPRO: "The information we collect automatically is only statistical data and does not
include personal information" and "We do not collect personal information automatically".

In the reference visit the subject types its values into the site's forms key by key (so a
script listening to keystrokes sees them). Whatever it typed must reach no domain outside the
first party and the service providers the profile declares (`browser.recipients`), before or
after the form is submitted, in any form: exact, case-folded, URL-encoded, base64, or the
md5/sha1/sha256 of the normalised value — the trimmed, lower-cased email that ad networks'
"advanced matching" hashes. Positive control: the typed values are seen in a request to the
first party (the form's own submission). Barrier: a later first-party page fetches itself.
"""

import pytest

from privacy_checks.checks import web


@pytest.mark.ccpa("1798.100(e)")
@pytest.mark.gdpr("Art. 5(1)(b)")
@pytest.mark.check("web.form-data-not-leaked")
def test_what_the_visitor_types_reaches_only_the_business_and_its_service_providers(reference_visit):
    web.form_data_not_leaked(reference_visit)
