"""The demo's switchable flaws: each breaks exactly one promise, so every check can be shown to fail."""

from __future__ import annotations

from collections.abc import Iterable

FLAWS: dict[str, str] = {
    # deletion
    "soft_delete": "deletion only sets users.deleted=1; every row in every store is kept",
    "keep_in_search_index": "deletion leaves the subject's documents in the search index",
    "keep_in_analytics": "deletion keeps analytics events with the email replaced by its sha256 hex",
    "keep_in_fts": ("deletion removes the user's search documents but never tells their full-text index "
                    "(FTS5, external content), which keeps their terms"),
    "rewrite_rows_on_delete": ("deletion rewrites the analytics visit log, giving every row a new physical "
                               "row id, and keeps the deleted user's visits in it"),
    "no_downstream_delete": "deletion sends no deletion notice to the recipients of the subject's data",
    "delete_hits_other_subject": "deletion also deletes the most recently created other user",
    "keep_in_cache": "deletion leaves the subject's profile in the Redis cache, without expiry",
    "cache_ttl_7_days": "deletion leaves the subject's cached profile in Redis, expiring in 7 days",
    "keep_old_versions": "objects are deleted with a delete marker only and overwrites keep earlier versions, "
                         "so the bucket still holds the subject's avatar and past account exports",
    "keep_in_lake": "the nightly Parquet analytics export only appends: a deleted subject's rows stay",
    "throttle_keeps_username": ("failed logins are kept in a login throttle table with the username tried, "
                                "the deleted subject's included"),
    "delete_removes_shared_thread": ("deletion also deletes the rooms the subject opened, with the other members' "
                                     "messages in them"),
    "keep_card_number": "deletion leaves the subject's card payments (card number and amount) in payments",
    "keep_login_times": ("deletion only nulls user_id in logins: the device's login times stay, with no text "
                         "of the subject beside them"),
    "no_secure_delete": ("the databases run with secure_delete off, are never vacuumed and their -wal is never cut "
                         "back: a deleted subject's rows stay readable in the files (storage residue), though SQL "
                         "no longer returns them"),
    "orphan_orders": "deletion leaves the subject's orders, still pointing at its user id (orders.user_id)",
    # logs and secrets at rest
    "pii_in_logs": "the application log records email and full name on signup and activity",
    "plaintext_password": "passwords are stored in clear in users.password_hash",
    # sharing and choices
    "ignore_opt_out": "an opt-out request is reported completed but sharing with the partner goes on",
    "ignore_gpc": "the Sec-GPC: 1 header is ignored",
    "opt_out_requires_verification": "an opt-out request must be verified with an emailed code",
    "ignore_limit": "a limit request is reported completed but sensitive fields still reach the partner",
    "ignore_objection": ("an objection to marketing (or a withdrawal of consent to it) is reported completed "
                         "but the partner still receives"),
    "sells_data": "every new user is also sent to a data broker (/databroker/purchase)",
    "shares_with_undeclared": "signups and activity are also sent to an undeclared recipient (/adtech/audience)",
    "discriminate": "users who opted out are quoted a higher price and a reduced service level",
    # mail (only with a mail server, --smtp-url)
    "mail_marketing_after_opt_out": ("an opt-out request does not reach the partner's newsletter list: the "
                                     "subject's name and email are still mailed to it"),
    "mail_undeclared_recipient": ("a copy of every signup is mailed to signups@archive.mediapro-backup.example, "
                                  "an address no recipient is declared for"),
    "bad_gpc_json": "/.well-known/gpc.json is served as text/plain with \"gpc\": \"yes\" and no lastUpdate",
    # response deadlines
    "overdue_requests": "the request log holds three back-dated requests (access, delete, opt-out) never answered",
    "no_acknowledgement": "requests get no acknowledgement: no 'We received' message, acknowledged_at left empty",
    "extension_without_notice": "extensions set extended_until without telling the consumer or giving a reason",
    # right to know, portability, correction
    "export_html_only": "the export is served as an HTML page, whatever format is asked for",
    "export_incomplete": "the export leaves out the postal address and the chat username",
    "export_other_subject": "the export's activity is picked by course, so other users' activity leaks in",
    "export_includes_shared_space": ("the export's messages are every message of the rooms the subject is in, other "
                                     "members' included"),
    "export_skips_own_messages": ("the export leaves out the messages the subject wrote in shared rooms (its "
                                  "name and email are elsewhere in it; only the message text is not)"),
    "export_includes_password": "the export carries the whole users row, password hash included",
    "export_categories_incomplete": "the export lists only category A, not every category collected",
    "export_skips_tickets": ("the export leaves out the subject's support tickets (their name and email are "
                             "elsewhere in it; only the ticket text is not)"),
    "skip_verification": "a privacy request's verification code is not checked: any code verifies it",
    "refuse_second_access": "an access request is denied when another was completed in the last 12 months",
    "partial_correction": "a correction updates the account but not the search index",
    "no_correction_notice": "a correction is not passed on to the recipients of the old data",
    # transport
    "plaintext_http": "the http listener serves the application instead of redirecting to https",
    "no_hsts": "https responses carry no Strict-Transport-Security header",
    "insecure_cookies": "the session cookie is set without Secure, HttpOnly and SameSite",
    "weak_tls": "the https listener also accepts TLS 1.0 and 1.1, with any cipher (@SECLEVEL=0)",
    "untrusted_cert": "https serves a certificate from a CA other than the one written to tls/ca.pem",
    "pii_in_url": "signup answers with a Location header carrying the new user's email in the query",
    "plaintext_webhooks": "deliveries to recipients go over plain http even when the sink offers https",
    # the policy as data (suites/policy)
    "undisclosed_geolocation": "the subject's precise location is stored in users.geolocation (category G, marked not collected)",
    "shares_geolocation": "the subject's precise location goes to the marketing partner with its lead (category G, which the policy neither collects nor discloses)",
    "stale_policy_date": "the policy page's text differs from process to process while its Last modified date stays",
    "outdated_policy_page": "the policy page says \"Last modified: December 2019\", more than 12 months ago",
    "profile_edit_not_saved": "a subject's own profile update answers with the new values but is never saved",
    # the website (demo/web.py; suites/web)
    "pixel_ignores_gpc": "the site's tag manager loads the partner's advertising pixel for a browser sending GPC",
    "pixel_after_opt_out": ("the partner's pixel keeps loading on page views after the visitor opted out through "
                            "the Do Not Sell or Share link"),
    "pixel_advanced_matching": ("the tag manager hands the partner's pixel the sha256 of the email typed at signup "
                                "(\"advanced matching\")"),
    "session_recorder_keylogs": "the session-recording script sends form fields unmasked, as they are typed",
    "tracker_before_consent": "third-party tags load before the visitor has chosen in the consent banner",
    "tracker_after_reject": ("the tag manager takes any answer in the consent banner for consent: after the visitor "
                             "clicks Reject all, the partner's pixel loads and sends page views"),
    "undeclared_cookie": ("the partner's pixel syncs its id with cookiematch.test, which sets a third-party cookie "
                          "the profile does not declare"),
}


def parse_flaws(names: Iterable[str]) -> frozenset[str]:
    """Validate flaw names (blank entries ignored, so "a,,b" and trailing commas are harmless)."""
    chosen = {name.strip() for name in names if name and name.strip()}
    for name in sorted(chosen):
        if name not in FLAWS:
            raise ValueError(f"unknown demo flaw {name!r}; known flaws: {', '.join(sorted(FLAWS))}")
    return frozenset(chosen)
