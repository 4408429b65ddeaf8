"""The clause registry: every citation of /work/shared/clauses.md, marker validation, Allure labels."""

import pytest

from privacy_checks.clauses import (
    EPICS,
    MARKER_FAMILIES,
    REGISTRY,
    ClauseError,
    ClauseRef,
    UnknownClause,
    allure_labels,
    clauses,
    get,
    resolve,
    validate_marker,
)
from privacy_checks.errors import PrivacyChecksError

# Copied by hand from /work/shared/clauses.md, so a registry edit that drops one fails here.
EXPECTED = {
    "ccpa": ["1798.100", "1798.81.5", "1798.105", "1798.106", "1798.110", "1798.115", "1798.120",
             "1798.121", "1798.125", "1798.130", "1798.135", "1798.140", "1798.150"],
    "ccpa_regs": ["7021", "7022", "7023", "7024", "7025", "7026", "7060", "7061", "7062", "7101"],
    "gdpr": ["5", "6", "7", "12", "15", "16", "17", "18", "19", "20", "21", "32"],
    # cited by suites/web (consent before cookies and tracking), beyond the reference table
    "eprivacy": ["5"],
}


def test_marker_families():
    assert MARKER_FAMILIES == ("ccpa", "ccpa_regs", "gdpr", "eprivacy", "gpc")


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_registry_holds_every_clause_of_the_reference_table(family):
    assert [c.id for c in clauses(family)] == EXPECTED[family]


def test_every_clause_is_complete():
    for family in MARKER_FAMILIES:
        for clause in clauses(family):
            assert clause.family == family
            assert clause.title and clause.right and clause.summary, clause
            assert clause.weight in ("critical", "normal", "minor"), clause
            assert clause.url.startswith("https://"), clause


def test_urls_follow_the_official_patterns():
    assert get("ccpa", "1798.105").url == (
        "https://leginfo.legislature.ca.gov/faces/codes_displaySection.xhtml?lawCode=CIV&sectionNum=1798.105"
    )
    assert get("ccpa", "1798.81.5").url.endswith("sectionNum=1798.81.5")
    assert get("ccpa_regs", "7022").url == "https://www.law.cornell.edu/regulations/california/11-CCR-7022"
    assert get("gdpr", "17").url == "https://eur-lex.europa.eu/eli/reg/2016/679/oj#art_17"
    for clause in clauses("gpc"):
        assert clause.url.startswith("https://privacycg.github.io/gpc-spec/")
    assert get("eprivacy", "5").url == "https://eur-lex.europa.eu/legal-content/EN/TXT/?uri=CELEX:02002L0058-20091219"
    assert resolve("eprivacy", "Art. 5(3)").display == "ePrivacy Directive Art. 5(3)"


def test_post_cpra_subsections_of_1798_130_are_recorded():
    numbers = get("ccpa", "1798.130").numbers
    assert "45 days" in numbers["(a)(2)(A)"]
    assert "machine-readable" in numbers["(a)(3)(B)(iii)"]
    assert "12 months" in numbers["(a)(5)"]
    assert "twice in 12 months" in numbers["(b)"]


def test_regulation_numbers_recorded():
    assert "10 business days" in get("ccpa_regs", "7021").numbers["(a)"]
    assert "90" in get("ccpa_regs", "7021").numbers["(b)"]
    assert "15 business days" in get("ccpa_regs", "7026").numbers["(f)"]
    assert "one month" in get("gdpr", "12").numbers["(3)"]


def test_numbers_cannot_be_changed_at_run_time():
    with pytest.raises(TypeError):
        get("gdpr", "17").numbers["(3)"] = "x"  # type: ignore[index]


@pytest.mark.parametrize(
    ("family", "ref", "section", "subsection", "display"),
    [
        ("ccpa", "1798.105", "1798.105", "", "Cal. Civ. Code §1798.105"),
        ("ccpa", "1798.130(a)(2)(A)", "1798.130", "(a)(2)(A)", "Cal. Civ. Code §1798.130(a)(2)(A)"),
        ("ccpa", "1798.130(a)(3)(B)(iii)", "1798.130", "(a)(3)(B)(iii)", "Cal. Civ. Code §1798.130(a)(3)(B)(iii)"),
        ("ccpa", "§1798.100(e)", "1798.100", "(e)", "Cal. Civ. Code §1798.100(e)"),
        ("ccpa", "1798.81.5", "1798.81.5", "", "Cal. Civ. Code §1798.81.5"),
        ("ccpa", " 1798.140(v)(1)(A)-(L) ", "1798.140", "(v)(1)(A)-(L)", "Cal. Civ. Code §1798.140(v)(1)(A)-(L)"),
        ("ccpa_regs", "7022(b)(1)", "7022", "(b)(1)", "11 CCR §7022(b)(1)"),
        ("ccpa_regs", "7021", "7021", "", "11 CCR §7021"),
        ("gdpr", "Art.17", "17", "", "GDPR Art. 17"),
        ("gdpr", "Art. 17", "17", "", "GDPR Art. 17"),
        ("gdpr", "17", "17", "", "GDPR Art. 17"),
        ("gdpr", "Article 17", "17", "", "GDPR Art. 17"),
        ("gdpr", "Art.17(3)", "17", "(3)", "GDPR Art. 17(3)"),
        ("gdpr", "Art. 12(3)", "12", "(3)", "GDPR Art. 12(3)"),
        ("gdpr", "art 32(1)(a)", "32", "(1)(a)", "GDPR Art. 32(1)(a)"),
        ("gpc", "Sec-GPC", "sec-gpc", "", "GPC spec: Sec-GPC header"),
        ("gpc", "navigator.globalPrivacyControl", "dom", "", "GPC spec: navigator.globalPrivacyControl"),
        ("gpc", "/.well-known/gpc.json", "well-known", "", "GPC spec: /.well-known/gpc.json"),
    ],
)
def test_resolve_keeps_subsection_for_display(family, ref, section, subsection, display):
    resolved = resolve(family, ref)
    assert isinstance(resolved, ClauseRef)
    assert resolved.clause is REGISTRY[family][section]
    assert resolved.subsection == subsection
    assert resolved.display == display
    assert str(resolved) == display
    assert resolved.url == resolved.clause.url


def test_ref_note_gives_what_the_subsection_says():
    assert "45 days" in resolve("ccpa", "1798.130(a)(2)(A)").note
    assert resolve("ccpa", "1798.130").note is None
    assert resolve("ccpa", "1798.130(z)").note is None


def test_unknown_ccpa_section_lists_the_known_ones():
    with pytest.raises(UnknownClause) as info:
        validate_marker("ccpa", ["1798.999"])
    message = str(info.value)
    assert message.startswith("unknown CCPA section '1798.999' in @pytest.mark.ccpa; known: 1798.100, 1798.81.5, ")
    assert message.endswith("1798.150")


def test_unknown_gdpr_article():
    with pytest.raises(UnknownClause, match=r"unknown GDPR article '99' in @pytest.mark.gdpr; known: 5, 6, 7, 12, 15"):
        validate_marker("gdpr", ["Art. 99(1)"])


def test_unknown_regulation_section():
    with pytest.raises(UnknownClause, match=r"'7027'.*known: 7021, 7022"):
        validate_marker("ccpa_regs", ["7027(g)"])


def test_unknown_gpc_section():
    with pytest.raises(UnknownClause, match=r"unknown GPC spec section 'DNT'"):
        validate_marker("gpc", ["DNT"])


@pytest.mark.parametrize(("family", "ref"), [("ccpa", "105"), ("gdpr", "Art.x"), ("ccpa_regs", "7022 b 1"),
                                             ("gdpr", "Art. 17(3"), ("ccpa", "")])
def test_malformed_reference(family, ref):
    with pytest.raises(UnknownClause, match=rf"malformed .* in @pytest.mark.{family}; expected e.g."):
        validate_marker(family, [ref])


def test_errors_are_value_errors_shown_as_one_line():
    with pytest.raises(ValueError):
        resolve("ccpa", "1798.999")
    assert issubclass(UnknownClause, PrivacyChecksError)
    assert issubclass(UnknownClause, ClauseError)


def test_marker_with_no_argument_is_an_error():
    with pytest.raises(ClauseError, match=r"@pytest.mark.gdpr needs at least one GDPR article"):
        validate_marker("gdpr", [])


def test_marker_argument_must_be_a_string():
    with pytest.raises(ClauseError, match=r"must be a string, not int"):
        validate_marker("gdpr", [17])


def test_unknown_family():
    with pytest.raises(ClauseError, match=r"unknown regulation family 'hipaa'; known: ccpa, ccpa_regs, gdpr, eprivacy, gpc"):
        validate_marker("hipaa", ["164.502"])


def test_validate_marker_with_several_args():
    refs = validate_marker("gdpr", ("Art.17", "Art.19"))
    assert [r.display for r in refs] == ["GDPR Art. 17", "GDPR Art. 19"]


def test_allure_labels_for_one_clause():
    labels = allure_labels(validate_marker("ccpa", ["1798.105"]))
    assert labels == {
        "epic": ["CCPA"],
        "feature": ["Right to delete"],
        "story": ["Cal. Civ. Code §1798.105"],
        "severity": "critical",
        "links": [(get("ccpa", "1798.105").url, "Cal. Civ. Code §1798.105")],
    }


def test_allure_labels_for_several_clauses_take_the_heaviest_severity():
    refs = validate_marker("ccpa_regs", ["7101", "7062"]) + validate_marker("gpc", ["Sec-GPC"])
    labels = allure_labels(refs)
    assert labels["epic"] == ["CCPA Regulations (11 CCR)", "Global Privacy Control"]
    assert labels["feature"] == ["Record-keeping", "Verification", "Opt-out preference signals"]
    assert labels["story"] == ["11 CCR §7101", "11 CCR §7062", "GPC spec: Sec-GPC header"]
    assert labels["severity"] == "critical"
    assert len(labels["links"]) == 3


def test_allure_labels_minor_only():
    assert allure_labels([resolve("ccpa_regs", "7101")])["severity"] == "minor"


def test_epic_names():
    assert EPICS == {"ccpa": "CCPA", "ccpa_regs": "CCPA Regulations (11 CCR)", "gdpr": "GDPR",
                     "eprivacy": "ePrivacy Directive", "gpc": "Global Privacy Control"}


def test_allure_labels_needs_refs():
    with pytest.raises(ClauseError):
        allure_labels([])
