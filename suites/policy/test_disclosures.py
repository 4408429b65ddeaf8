"""What the target stores, against what its policy discloses — Cal. Civ. Code §1798.100(a)(1),
§1798.130(a)(5)(B)(i), §1798.140(v)(1)(A)-(L).

MediaPRO's California addendum: "In particular, we have collected the following categories of
personal information from its consumers within the last twelve (12) months:" — A. Identifiers
YES, B. California Customer Records YES, ..., G. Geolocation data NO, ...; and "What specific
information is collected? For registered users and users/customers, including users of free
trials, we collect the following data: Full name; Email address; Username; Password; Company;
Department; IP address." (with the USB-campaign and LMS lists).

One procedure per module (flows/disclosure.py): a subject with a seeded precise location
(coordinates with distinctive digits) is created and acts; once it is seen in every store
(positive control) and a later control subject is too (barrier), every place its values are
stored is classified by the field found there (privacy_checks/data/field_categories.yaml).
Column names are hints only, in the evidence. Three verdicts:
- promise kept: no category the policy marks NO is held;
- law met: every category held is one the policy discloses as collected (the table must
  list it, not merely not deny it);
- every field stored is one the policy's field lists mention.

And what recipients receive: "In the preceding twelve (12) months, Company has disclosed the
following categories of personal information for a business purpose: A, B, D, F". A subject
and a later control act; once the control's delivery follows the subject's at every recipient
(barrier), each field the subject's deliveries to service providers and third parties carried
is classified the same way, and a category outside that list fails, naming the recipient,
request and field.
"""

import pytest

from privacy_checks.checks import policy as judge
from privacy_checks.flows import sharing
from privacy_checks.flows.disclosure import run_disclosure


@pytest.fixture(scope="module")
def disclosure(request, privacy_run):
    yield from privacy_run.procedure(request, run_disclosure)


@pytest.mark.ccpa("1798.100(a)(1)")
@pytest.mark.check("policy.disclosure.no-undisclosed-category")
def test_the_target_holds_no_category_the_policy_says_it_does_not_collect(disclosure, privacy_policy):
    judge.no_undisclosed_category(disclosure, privacy_policy)


@pytest.mark.ccpa("1798.130(a)(5)(B)(i)", "1798.110(c)(1)")
@pytest.mark.check("policy.disclosure.categories-collected-disclosed")
def test_every_category_the_target_holds_is_disclosed_as_collected(disclosure, privacy_policy):
    judge.categories_collected_disclosed(disclosure, privacy_policy)


@pytest.mark.ccpa("1798.100(a)(1)")
@pytest.mark.check("policy.disclosure.fields-in-policy-lists")
def test_every_field_the_target_stores_is_named_in_the_policy_field_lists(disclosure, privacy_policy):
    judge.fields_in_policy_lists(disclosure, privacy_policy)


@pytest.fixture(scope="module")
def received(request, privacy_run):
    yield from sharing.procedure(privacy_run, request, sharing.run_census)


@pytest.mark.ccpa("1798.130(a)(5)(C)", "1798.115(c)")
@pytest.mark.check("policy.disclosure.recipients-get-disclosed-categories-only")
def test_recipients_receive_only_categories_the_policy_discloses(received, privacy_policy):
    judge.recipients_get_disclosed_categories_only(received, privacy_policy)
