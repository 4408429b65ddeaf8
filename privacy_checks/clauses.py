"""The registry of regulation clauses the suites cite, and validation of the markers that cite them.

Auditors read these citations, so every entry follows /work/shared/clauses.md: the CCPA
(Cal. Civ. Code, as amended by the CPRA), the CCPA regulations (Title 11, Cal. Code of Regs.,
Division 6, Chapter 1), the GDPR (Regulation (EU) 2016/679), the ePrivacy Directive (2002/58/EC
as amended by 2009/136/EC: consent before storing or reading information on a visitor's device)
and the Global Privacy Control specification (a specification, not law).

A marker cites a section, optionally narrowed to a subsection: ``@pytest.mark.ccpa("1798.130(a)(2)(A)")``,
``@pytest.mark.ccpa_regs("7022(b)(1)")``, ``@pytest.mark.gdpr("Art. 17(3)", "Art.19")``,
``@pytest.mark.eprivacy("Art. 5(3)")``, ``@pytest.mark.gpc("Sec-GPC")``. The subsection is kept for display; the section must be known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from privacy_checks.errors import PrivacyChecksError

MARKER_FAMILIES = ("ccpa", "ccpa_regs", "gdpr", "eprivacy", "gpc")

WEIGHTS = ("critical", "normal", "minor")

# Allure's own severity names; the weights were chosen to be a subset so no mapping is lost.
_SEVERITY_RANK = {"critical": 0, "normal": 1, "minor": 2}

EPICS = {
    "ccpa": "CCPA",
    "ccpa_regs": "CCPA Regulations (11 CCR)",
    "gdpr": "GDPR",
    "eprivacy": "ePrivacy Directive",
    "gpc": "Global Privacy Control",
}

# How a section of each family is named in an error message.
_SECTION_NOUN = {
    "ccpa": "CCPA section",
    "ccpa_regs": "CCPA regulations (11 CCR) section",
    "gdpr": "GDPR article",
    "eprivacy": "ePrivacy Directive article",
    "gpc": "GPC spec section",
}

_FIRST_EXAMPLE = {"ccpa": "'1798.105'", "ccpa_regs": "'7022'", "gdpr": "'Art. 17'", "eprivacy": "'Art. 5(3)'",
                  "gpc": "'Sec-GPC'"}
_EXAMPLES = {
    "ccpa": "'1798.105' or '1798.130(a)(2)(A)'",
    "ccpa_regs": "'7022' or '7022(b)(1)'",
    "gdpr": "'Art. 17', 'Art.17(3)', 'Article 17' or '17'",
    "eprivacy": "'Art. 5(3)' or '5(3)'",
    "gpc": "'Sec-GPC', 'navigator.globalPrivacyControl' or 'gpc.json'",
}


class ClauseError(PrivacyChecksError, ValueError):
    """A marker cites clauses in a way that cannot be resolved (no argument, wrong type, bad syntax)."""


class UnknownClause(ClauseError):
    """A marker cites a section that is not in the registry."""


@dataclass(frozen=True)
class Clause:
    family: str
    id: str
    title: str
    right: str
    url: str
    weight: str
    summary: str
    # subsection (or topic) -> what a check relies on, as recorded in clauses.md
    numbers: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if self.family not in MARKER_FAMILIES:
            raise ValueError(f"clause {self.id!r}: unknown family {self.family!r}")
        if self.weight not in WEIGHTS:
            raise ValueError(f"clause {self.id!r}: weight must be one of {WEIGHTS}, not {self.weight!r}")
        object.__setattr__(self, "numbers", MappingProxyType(dict(self.numbers)))

    @property
    def display(self) -> str:
        return _display(self.family, self.id, "")


@dataclass(frozen=True)
class ClauseRef:
    clause: Clause
    subsection: str
    display: str

    @property
    def family(self) -> str:
        return self.clause.family

    @property
    def url(self) -> str:
        return self.clause.url

    @property
    def note(self) -> str | None:
        """What clauses.md records for this exact subsection, if anything."""
        return self.clause.numbers.get(self.subsection) if self.subsection else None

    @property
    def id(self) -> str:
        """The citation's stable id: 'ccpa:1798.105(c)', 'ccpa_regs:7022(b)', 'gdpr:Art. 17(3)',
        'gpc:sec-gpc' (as JUnit properties, the results file and OSCAL carry it)."""
        section = f"Art. {self.clause.id}" if self.family in ("gdpr", "eprivacy") else self.clause.id
        return f"{self.family}:{section}{self.subsection}"

    def __str__(self) -> str:
        return self.display


def _display(family: str, section: str, subsection: str) -> str:
    if family == "ccpa":
        return f"Cal. Civ. Code §{section}{subsection}"
    if family == "ccpa_regs":
        return f"11 CCR §{section}{subsection}"
    if family == "gdpr":
        return f"GDPR Art. {section}{subsection}"
    if family == "eprivacy":
        return f"ePrivacy Directive Art. {section}{subsection}"
    return f"GPC spec: {_GPC_NAMES[section]}"


_LEGINFO = "https://leginfo.legislature.ca.gov/faces/codes_displaySection.xhtml?lawCode=CIV&sectionNum={}"
_CORNELL = "https://www.law.cornell.edu/regulations/california/11-CCR-{}"
_EURLEX = "https://eur-lex.europa.eu/eli/reg/2016/679/oj#art_{}"
# the consolidated text (as amended by Directive 2009/136/EC, which wrote Art. 5(3) as it stands)
_EPRIVACY = "https://eur-lex.europa.eu/legal-content/EN/TXT/?uri=CELEX:02002L0058-20091219"
_GPC_SPEC = "https://privacycg.github.io/gpc-spec/"

# ReSpec derives these anchors from the section headings of the spec.
_GPC_ANCHORS = {
    "sec-gpc": "the-sec-gpc-header-field-for-http-requests",
    "dom": "javascript-property-to-detect-preference",
    "well-known": "gpc-support-resource",
}
_GPC_NAMES = {
    "sec-gpc": "Sec-GPC header",
    "dom": "navigator.globalPrivacyControl",
    "well-known": "/.well-known/gpc.json",
}
_GPC_ALIASES = {
    "sec-gpc": "sec-gpc",
    "header": "sec-gpc",
    "sec-gpc header": "sec-gpc",
    "dom": "dom",
    "js": "dom",
    "navigator.globalprivacycontrol": "dom",
    "globalprivacycontrol": "dom",
    "well-known": "well-known",
    "gpc.json": "well-known",
    "/.well-known/gpc.json": "well-known",
    ".well-known/gpc.json": "well-known",
}


def _ccpa(id, title, right, weight, summary, numbers=None) -> Clause:
    return Clause("ccpa", id, title, right, _LEGINFO.format(id), weight, summary, numbers or {})


def _regs(id, title, right, weight, summary, numbers=None) -> Clause:
    return Clause("ccpa_regs", id, title, right, _CORNELL.format(id), weight, summary, numbers or {})


def _gdpr(id, title, right, weight, summary, numbers=None) -> Clause:
    return Clause("gdpr", id, title, right, _EURLEX.format(id), weight, summary, numbers or {})


def _eprivacy(id, title, right, weight, summary, numbers=None) -> Clause:
    return Clause("eprivacy", id, title, right, _EPRIVACY, weight, summary, numbers or {})


def _gpc(id, title, weight, summary, numbers=None) -> Clause:
    url = f"{_GPC_SPEC}#{_GPC_ANCHORS[id]}"
    return Clause("gpc", id, title, "Opt-out preference signals", url, weight, summary, numbers or {})


# Section titles of the Civil Code are descriptive (the code has no official section headings);
# 11 CCR and GDPR titles are the official headings.
_CLAUSES: tuple[Clause, ...] = (
    _ccpa(
        "1798.100", "General duties of businesses that collect personal information",
        "Notice, retention and security", "critical",
        "Notice at collection; retention no longer than reasonably necessary; reasonable security.",
        {"(e)": "implement reasonable security procedures and practices appropriate to the nature "
                "of the personal information"},
    ),
    _ccpa(
        "1798.81.5", "Reasonable security for personal information",
        "Reasonable security", "critical",
        "Civil Code outside the CCPA title: the security duty the transport checks enforce, "
        "together with 1798.100(e).",
    ),
    _ccpa(
        "1798.105", "Right to delete", "Right to delete", "critical",
        "Delete the consumer's personal information from its records, direct service providers and "
        "contractors to delete, and notify third parties it sold or shared to.",
        {"(c)(1)": "delete from its records, notify service providers or contractors to delete, and notify "
                   "all third parties it sold or shared to, unless impossible or disproportionate effort",
         "(d)": "the exceptions a retention exception may cite"},
    ),
    _ccpa("1798.106", "Right to correct", "Right to correct", "normal",
          "Correct inaccurate personal information on a verifiable consumer request.",
          {"(c)": "use commercially reasonable efforts to correct, as directed by the consumer"}),
    _ccpa(
        "1798.110", "Right to know what personal information is collected; right to access",
        "Right to know", "critical",
        "Disclose the categories and the specific pieces of personal information collected.",
        {"(b)": "disclose the information of (a) to the consumer on a verifiable consumer request",
         "(c)(1)": "disclose (in the privacy policy, per 130(a)(5)(B)) the categories of personal information "
                   "collected"},
    ),
    _ccpa("1798.115", "Right to know what personal information is sold or shared and to whom",
          "Right to know (sale and sharing)", "normal",
          "Disclose the categories sold or shared and the categories of third parties."),
    _ccpa("1798.120", "Right to opt out of sale or sharing",
          "Right to opt out of sale or sharing", "critical",
          "Stop selling or sharing the consumer's personal information on request.",
          {"(d)": "after the consumer's direction, no selling or sharing unless the consumer later consents"}),
    _ccpa("1798.121", "Right to limit use and disclosure of sensitive personal information",
          "Right to limit use of sensitive personal information", "normal",
          "Limit the use of sensitive personal information to what the service needs.",
          {"(b)": "after the consumer's direction, no use or disclosure for any other purpose unless the consumer "
                  "later consents"}),
    _ccpa("1798.125", "No retaliation / non-discrimination for exercising rights",
          "Right to non-discrimination", "normal",
          "Same price and quality of service for a consumer who exercised a right.",
          {"(a)(1)(B)": "no different prices or rates", "(a)(1)(C)": "no different level or quality of goods or services"}),
    _ccpa(
        "1798.130", "Notice, disclosure, correction and deletion requirements",
        "Request handling and deadlines", "critical",
        "How and when requests are answered. Subsection letters changed with the CPRA; those below "
        "are the post-CPRA ones.",
        {
            "(a)(2)(A)": "respond within 45 days of receipt, even while verification is pending; "
                         "one extension of 45 more days with notice within the first 45 days",
            "(a)(3)(B)(iii)": "specific pieces in a format easily understandable and, where technically "
                              "feasible, structured, commonly used and machine-readable",
            "(a)(5)": "privacy policy updated at least once every 12 months",
            "(a)(5)(B)(i)": "the privacy policy lists the categories collected in the preceding 12 months",
            "(b)": "no obligation to answer requests to know/access more than twice in 12 months",
        },
    ),
    _ccpa("1798.135", "Methods of limiting sale, sharing and use",
          "Right to opt out of sale or sharing", "critical",
          "The \"Do Not Sell or Share\" link and opt-out preference signals.",
          {"(a)(1)": "the \"Do Not Sell or Share My Personal Information\" link to a page that enables the opt-out",
           "(b)(1)": "opt-out of sale/sharing through an opt-out preference signal",
           "(c)(1)": "no account or information beyond what is necessary to opt out",
           "(c)(4)": "refrain from selling or sharing once the consumer has opted out"}),
    _ccpa(
        "1798.140", "Definitions", "Definitions", "minor",
        "Definitions the checks rely on.",
        {"(v)(1)(A)-(L)": "categories of personal information",
         "(ae)": "sensitive personal information"},
    ),
    _ccpa("1798.150", "Private right of action for breaches caused by failure to maintain reasonable security",
          "Reasonable security", "minor",
          "The consequence of a breach, not the duty: cite 1798.100(e) or 1798.81.5 for the duty."),
    _regs(
        "7021", "Timelines for Responding to Requests to Delete, Requests to Correct, and Requests to Know",
        "Request handling and deadlines", "critical",
        "Confirm receipt within 10 business days; respond within 45 calendar days of receipt.",
        {"(a)": "confirm receipt and explain processing within 10 business days",
         "(b)": "respond within 45 calendar days from receipt regardless of verification time; up to "
                "45 more (90 in total) with notice and an explanation of the reason"},
    ),
    _regs(
        "7022", "Requests to Delete", "Right to delete", "critical",
        "How a business complies with a request to delete.",
        {"(b)(1)": "permanently and completely erase, de-identify or aggregate",
         "(b)(2)": "notify service providers and contractors to delete",
         "(b)(3)": "notify third parties it sold or shared to",
         "(d)": "archived or backup systems may wait until restored or next accessed"},
    ),
    _regs("7023", "Requests to Correct", "Right to correct", "normal",
          "How a business complies with a request to correct."),
    _regs(
        "7024", "Requests to Know", "Right to know", "critical",
        "How a business complies with a request to know.",
        {"(a)": "an unverified request for specific pieces gets none of them",
         "(d)": "never disclose SSN, driver's licence or government id number, financial account number, "
                "health insurance or medical id, account password, security questions and answers, or "
                "unique biometric data; say that it is held instead"},
    ),
    _regs("7025", "Opt-Out Preference Signals", "Opt-out preference signals", "critical",
          "Treat Sec-GPC: 1 as a valid opt-out of sale/sharing for the browser or device and any "
          "consumer profile linked to it, frictionlessly.",
          {"(b)": "process a signal in a commonly used format (e.g. an HTTP header) as a valid opt-out of sale/sharing",
           "(c)(1)": "treat it as a valid opt-out for that browser or device, any profile linked to it, and the "
                     "consumer if known"}),
    _regs(
        "7026", "Requests to Opt-Out of Sale/Sharing", "Right to opt out of sale or sharing", "critical",
        "How a business complies with a request to opt out of sale/sharing.",
        {"(f)": "comply as soon as feasibly possible, no later than 15 business days from receipt; "
                "notify third parties"},
    ),
    _regs("7060", "General Rules Regarding Verification", "Verification", "normal",
          "No verification required for opt-out; no fee for verification.",
          {"(a)": "a reasonable, documented method for verifying who makes a request to know, delete or correct",
           "(b)": "no identity verification for a request to opt out of sale/sharing or to limit"}),
    _regs("7061", "Verification for Password-Protected Accounts", "Verification", "critical",
          "Re-authenticate the account holder before disclosing or deleting.",
          {"(a)": "verify through the account's existing authentication; re-authenticate before deleting, "
                  "correcting or disclosing"}),
    _regs("7062", "Verification for Non-Accountholders", "Verification", "normal",
          "Categories: reasonable degree of certainty (2 data points); specific pieces: reasonably high "
          "degree (3 data points and a signed declaration)."),
    _regs("7101", "Record-Keeping", "Record-keeping", "minor",
          "Keep records of consumer requests and responses for at least 24 months (a lawful retention "
          "of request records, not of the deleted data).",
          {"(a)": "records of consumer requests and responses kept for at least 24 months"}),
    _gdpr("5", "Principles relating to processing of personal data", "Principles of processing", "critical",
          "Lawfulness, fairness and transparency; purpose limitation; data minimisation.",
          {"(1)(b)": "collected for specified, explicit and legitimate purposes and not further processed "
                     "in a manner incompatible with those purposes (purpose limitation)"}),
    _gdpr("6", "Lawfulness of processing", "Lawful basis and consent", "critical",
          "Processing is lawful only on one of the bases listed, such as the data subject's consent.",
          {"(1)(a)": "the data subject has given consent to the processing for one or more specific purposes"}),
    _gdpr("7", "Conditions for consent", "Consent withdrawal", "normal",
          "Consent can be withdrawn as easily as it was given.",
          {"(3)": "withdrawal as easy as giving; stops consent-based processing"}),
    _gdpr(
        "12", "Transparent information, communication and modalities for the exercise of the rights "
        "of the data subject", "Request handling and deadlines", "normal",
        "How and when requests are answered.",
        {"(3)": "respond without undue delay, within one month of receipt; extend by two further months, "
                "informing the data subject within the first month with the reasons (periods per "
                "Regulation (EEC, Euratom) No 1182/71)"},
    ),
    _gdpr("15", "Right of access by the data subject", "Right of access", "critical",
          "Confirmation, the personal data and a copy.",
          {"(3)": "a copy; in a commonly used electronic form when requested electronically"}),
    _gdpr("16", "Right to rectification", "Right to rectification", "normal",
          "Rectify inaccurate personal data without undue delay."),
    _gdpr("17", "Right to erasure ('right to be forgotten')", "Right to erasure", "critical",
          "Erase personal data without undue delay.",
          {"(3)": "the exceptions a retention exception may cite"}),
    _gdpr("18", "Right to restriction of processing", "Right to restriction of processing", "normal",
          "Restrict processing on request."),
    _gdpr("19", "Notification obligation regarding rectification or erasure of personal data or "
          "restriction of processing", "Notification of recipients", "normal",
          "Tell each recipient of any rectification, erasure or restriction."),
    _gdpr("20", "Right to data portability", "Right to data portability", "normal",
          "Receive the data and transmit it to another controller.",
          {"(1)": "structured, commonly used and machine-readable format"}),
    _gdpr("21", "Right to object", "Right to object", "critical",
          "Object to processing; for direct marketing, processing must stop.",
          {"(2)": "object at any time to processing for direct marketing",
           "(3)": "after an objection to direct marketing, no further processing for that purpose"}),
    _gdpr("32", "Security of processing", "Security of processing", "critical",
          "Appropriate technical and organisational security measures.",
          {"(1)(a)": "pseudonymisation and encryption of personal data"}),
    _eprivacy("5", "Confidentiality of the communications", "Consent to cookies and tracking", "critical",
              "Storing information, or gaining access to information already stored, in a user's terminal "
              "equipment only with the user's consent, unless strictly necessary for the service requested.",
              {"(3)": "consent, given with clear and comprehensive information, before storing or accessing "
                      "information on the terminal equipment (cookies, identifiers read by scripts)"}),
    _gpc("sec-gpc", "The Sec-GPC Header Field for HTTP Requests", "critical",
         "Sec-GPC: 1 expresses a do-not-sell-or-share preference; only the exact value \"1\" counts.",
         {"value": "exactly \"1\"; any other value is ignored"}),
    _gpc("dom", "JavaScript Property to Detect Preference", "normal",
         "navigator.globalPrivacyControl reflects the preference sent with the page."),
    _gpc("well-known", "GPC Support Resource", "minor",
         "Optional /.well-known/gpc.json served as application/json: {\"gpc\": true, \"lastUpdate\": "
         "\"YYYY-MM-DD\"}."),
)

REGISTRY: Mapping[str, Mapping[str, Clause]] = MappingProxyType({
    family: MappingProxyType({c.id: c for c in _CLAUSES if c.family == family})
    for family in MARKER_FAMILIES
})

# A subsection is any run of parenthesised tokens: (a)(2)(A), (3), (1)(a), (v)(1)(A)-(L).
_SUB = r"((?:\s*\([0-9A-Za-z]+\)(?:-\([0-9A-Za-z]+\))?)*)"
_PATTERNS = {
    "ccpa": re.compile(r"^(?:§\s*|section\s+)?(1798\.\d+(?:\.\d+)?)" + _SUB + r"$", re.IGNORECASE),
    "ccpa_regs": re.compile(r"^(?:§\s*|section\s+)?(\d{4})" + _SUB + r"$", re.IGNORECASE),
    "gdpr": re.compile(r"^(?:art(?:icle)?\.?\s*)?(\d{1,2})" + _SUB + r"$", re.IGNORECASE),
    "eprivacy": re.compile(r"^(?:art(?:icle)?\.?\s*)?(\d{1,2})" + _SUB + r"$", re.IGNORECASE),
}


def clauses(family: str) -> tuple[Clause, ...]:
    """Every clause of a family, in the order of the reference table."""
    return tuple(_family_registry(family).values())


def get(family: str, section: str) -> Clause:
    """The clause for an exact section id ('1798.105', '7022', '17', 'sec-gpc')."""
    return resolve(family, section).clause


def resolve(family: str, ref: str, *, marker: str | None = None) -> ClauseRef:
    """Resolve a citation such as '1798.130(a)(2)(A)' or 'Art. 17(3)' to its section's clause."""
    registry = _family_registry(family)
    where = f" in {marker or f'@pytest.mark.{family}'}"
    if not isinstance(ref, str):
        raise ClauseError(f"{_SECTION_NOUN[family]} must be a string, not {type(ref).__name__} "
                          f"({ref!r}){where}")
    text = ref.strip()
    if family == "gpc":
        section = _GPC_ALIASES.get(text.lower())
        subsection = ""
        if section is None:
            raise UnknownClause(_unknown(family, text, where))
    else:
        m = _PATTERNS[family].match(text)
        if m is None:
            raise UnknownClause(f"malformed {_SECTION_NOUN[family]} {text!r}{where}; "
                                f"expected e.g. {_EXAMPLES[family]}")
        section, subsection = m.group(1), re.sub(r"\s+", "", m.group(2))
        if section not in registry:
            raise UnknownClause(_unknown(family, section, where))
    return ClauseRef(registry[section], subsection, _display(family, section, subsection))


def validate_marker(family: str, args: Iterable[object]) -> list[ClauseRef]:
    """Resolve every argument of ``@pytest.mark.<family>(...)``; called by the plugin at collection."""
    _family_registry(family)
    marker = f"@pytest.mark.{family}"
    args = tuple(args)
    if not args:
        raise ClauseError(f"{marker} needs at least one {_SECTION_NOUN[family]}, "
                          f"e.g. {marker}({_FIRST_EXAMPLE[family]})")
    return [resolve(family, arg, marker=marker) for arg in args]  # type: ignore[arg-type]


@dataclass(frozen=True)
class ClauseSelector:
    """A clause named by a user (a waiver, ``--privacy-clause``): 'ccpa:1798.105' selects every
    citation of that section; 'ccpa_regs:7022(b)' only citations of that subsection and below."""

    text: str
    family: str
    section: str
    subsection: str

    def selects(self, citations: Iterable[tuple[str, str]]) -> bool:
        """`citations` are (family, reference) pairs as written in a check's markers."""
        for family, ref in citations:
            try:
                cited = resolve(family, ref)
            except ClauseError:
                continue
            if cited.family == self.family and cited.clause.id == self.section and \
                    cited.subsection.startswith(self.subsection):
                return True
        return False


def clause_selector(text: str) -> ClauseSelector:
    """Parse 'family:reference' (e.g. 'ccpa:1798.105', 'gdpr:Art. 17(3)'); ClauseError says what is wrong."""
    family, sep, ref = str(text).partition(":")
    family = family.strip()
    if not sep or family not in MARKER_FAMILIES:
        raise ClauseError(f"clause {text!r} must look like 'ccpa:1798.105' with a family among "
                          f"{', '.join(MARKER_FAMILIES)}")
    resolved = resolve(family, ref.strip(), marker=f"clause {text!r}")
    return ClauseSelector(str(text), resolved.family, resolved.clause.id, resolved.subsection)


def allure_labels(refs: Iterable[ClauseRef]) -> dict:
    """Allure metadata for the clauses a check cites.

    A check may cite several clauses, so epic, feature and story are lists (each becomes one label);
    severity is the heaviest weight among them; links pair each URL with its display text.
    """
    refs = list(refs)
    if not refs:
        raise ClauseError("allure_labels needs at least one clause reference")

    def unique(values: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(values))

    return {
        "epic": unique(EPICS[r.family] for r in refs),
        "feature": unique(r.clause.right for r in refs),
        "story": unique(r.display for r in refs),
        "severity": min((r.clause.weight for r in refs), key=_SEVERITY_RANK.__getitem__),
        "links": unique((r.url, r.display) for r in refs),  # type: ignore[arg-type]
    }


def _family_registry(family: str) -> Mapping[str, Clause]:
    try:
        return REGISTRY[family]
    except KeyError:
        raise ClauseError(f"unknown regulation family {family!r}; known: {', '.join(MARKER_FAMILIES)}") from None


def _unknown(family: str, section: str, where: str) -> str:
    known = ", ".join(REGISTRY[family])
    return f"unknown {_SECTION_NOUN[family]} {section!r}{where}; known: {known}"
