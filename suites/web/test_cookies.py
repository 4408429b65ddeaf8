"""Third-party cookies are disclosed — Cal. Civ. Code §1798.100(a)(1), §1798.115.

MediaPRO: "These third parties may use cookies alone or in conjunction with web beacons or
other tracking technologies to collect information about you when you use Our Services."

Every cookie in the reference visitor's browser (which accepted the banner) whose registrable
domain is not the first party's must belong to a recipient the profile declares
(`browser.recipients`), as every server-side recipient must be declared in `sinks`. The check
names each undeclared cookie, its domain and the response that set it.
"""

import pytest

from privacy_checks.checks import web


@pytest.mark.ccpa("1798.100(a)(1)", "1798.115")
@pytest.mark.check("web.cookies.disclosed")
def test_every_third_party_cookie_belongs_to_a_declared_recipient(reference_visit):
    web.cookies_disclosed(reference_visit)
