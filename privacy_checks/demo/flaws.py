"""The demo's switchable flaws: each breaks exactly one promise, so every check can be shown to fail."""

from __future__ import annotations

from collections.abc import Iterable

FLAWS: dict[str, str] = {
    # deletion
    "soft_delete": "deletion only sets users.deleted=1; every row in every store is kept",
    "keep_in_search_index": "deletion leaves the subject's documents in the search index",
    "keep_in_analytics": "deletion keeps analytics events with the email replaced by its sha256 hex",
    "no_downstream_delete": "deletion sends no deletion notice to the recipients of the subject's data",
    "delete_hits_other_subject": "deletion also deletes the most recently created other user",
    # logs and secrets at rest
    "pii_in_logs": "the application log records email and full name on signup and activity",
    "plaintext_password": "passwords are stored in clear in users.password_hash",
    # sharing and choices
    "ignore_opt_out": "an opt-out request is reported completed but sharing with the partner goes on",
    "ignore_gpc": "the Sec-GPC: 1 header is ignored",
    "opt_out_requires_verification": "an opt-out request must be verified with an emailed code",
    "ignore_limit": "a limit request is reported completed but sensitive fields still reach the partner",
    "ignore_objection": "an objection to marketing is reported completed but the partner still receives",
    "sells_data": "every new user is also sent to a data broker (/databroker/purchase)",
    "shares_with_undeclared": "signups and activity are also sent to an undeclared recipient (/adtech/audience)",
    "discriminate": "users who opted out are quoted a higher price and a reduced service level",
    # transport
    "plaintext_http": "the http listener serves the application instead of redirecting to https",
    "no_hsts": "https responses carry no Strict-Transport-Security header",
    "insecure_cookies": "the session cookie is set without Secure, HttpOnly and SameSite",
}


def parse_flaws(names: Iterable[str]) -> frozenset[str]:
    """Validate flaw names (blank entries ignored, so "a,,b" and trailing commas are harmless)."""
    chosen = {name.strip() for name in names if name and name.strip()}
    for name in sorted(chosen):
        if name not in FLAWS:
            raise ValueError(f"unknown demo flaw {name!r}; known flaws: {', '.join(sorted(FLAWS))}")
    return frozenset(chosen)
