"""The operations the suites run: in which order, with which values, and what they read back.

A profile's templates are filled in at run time, so a `{{ captured.request_id }}` that no
earlier step captured only fails in the middle of a run. This table says, for every operation
the suites (and `privacy-checks cleanup` and `census`) run, which operations have always run
on the same subject before it, which `params` it is given, which other subjects it may refer
to, and which captured values the suites read after it. `privacy-checks lint` checks every
template against it, and docs/profile.md's table of operations is this table in prose
(tests/test_operations.py keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class OperationUse:
    name: str
    suites: str  # who runs it, in words (docs)
    # Operations that have run on the same subject before this one, in every way the suites run
    # it; its templates may use what they captured. `None`: it runs with no subject at all.
    after: tuple[str, ...] | None = ("create_subject",)
    # The captured values come from the ledger (an interrupted run's subject, in `cleanup`): only
    # what the ledger keeps (secrets such as tokens and codes are never written there).
    from_ledger: bool = False
    params: tuple[str, ...] = ()  # names of `params.<name>`; ("<field>",) means subject fields
    others: tuple[str, ...] = ()  # other subjects its templates and `as:` may name
    reads: tuple[str, ...] = ()  # captured values the suites read after it ("!" marks required ones)
    required: bool = False  # a suite cannot run without it (lint does not insist: not_offered may say why)


_FIELDS = ("<field>",)

USES: dict[str, OperationUse] = {u.name: u for u in (
    OperationUse("create_subject", "every suite: creates each synthetic subject", after=(), required=True),
    OperationUse("login", "access, deletion (account-gone), transport, policy; run by itself when a step's "
                 "bearer auth needs a `captured.` value not yet captured", after=(), reads=("token",)),
    OperationUse("activity", "every suite that needs data in the stores or at recipients, for every subject"),
    OperationUse("interact", "access, deletion and census, when declared: the subject and the decoy share a space "
                 "and each writes into it", others=("decoy", "control")),
    OperationUse("read_subject", "deletion (account-gone, others-intact), transport, cleanup (finds and checks "
                 "a record before removing it)", from_ledger=True),
    OperationUse("delete", "deletion (ccpa, gdpr); cleanup when no `cleanup` operation is declared",
                 reads=("request_id",)),
    OperationUse("cleanup", "teardown of every suite, `privacy-checks cleanup` and `census`: removes a subject "
                 "for good", from_ledger=True),
    OperationUse("export", "right to know, access, portability: the verified access request, answered",
                 reads=("request_id", "access_status")),
    OperationUse("request_access", "right to know (verification): files an access request",
                 reads=("!request_id",)),
    OperationUse("fetch_code", "right to know (verification): reads the code sent for it",
                 after=("create_subject", "request_access"), reads=("!code",)),
    OperationUse("verify_request", "right to know (verification): submits a (wrong) code",
                 after=("create_subject", "request_access", "fetch_code")),
    OperationUse("correct", "right to correct, rectification", params=_FIELDS,
                 reads=("request_id", "correct_status")),
    OperationUse("opt_out", "opt-out, non-discrimination", reads=("opt_out…request_id",)),
    OperationUse("limit", "right to limit", reads=("limit…request_id",)),
    OperationUse("object", "right to object", reads=("object…request_id",)),
    OperationUse("withdraw_consent", "right to object (consent)", reads=("withdraw_consent…request_id",)),
    OperationUse("gpc_activity", "Global Privacy Control: the activity with Sec-GPC: 1"),
    OperationUse("price", "non-discrimination: the price and service level quoted"),
    OperationUse("read_profile", "policy (review and change by logging in)"),
    OperationUse("update_profile", "policy (review and change by logging in)", params=_FIELDS),
    OperationUse("file_request", "response deadlines: files a (back-dated) control request",
                 params=("type", "received_at"), reads=("!request_id",)),
    OperationUse("read_request", "response deadlines: reads a request back", after=None, params=("request_id",)),
    OperationUse("read_acknowledgement", "response deadlines: when a request was acknowledged, for the "
                 "request's subject as the ledger keeps it (a mail step reads the subject's own mailbox)",
                 after=(), from_ledger=True, params=("request_id",)),
    OperationUse("list_requests", "response deadlines: the target's own request log", after=None),
)}


def use(name: str) -> OperationUse:
    """How the suites run operation `name`; one they never run is assumed to follow create_subject."""
    return USES.get(name) or OperationUse(name, "no suite (run only by your own tests)")


# Captured names the ledger never keeps (ledger._public_captures): they cannot reach `cleanup`.
SECRET_CAPTURE_WORDS = ("token", "secret", "password", "code", "cookie")


def kept_by_ledger(name: str) -> bool:
    return not any(w in name.lower() for w in SECRET_CAPTURE_WORDS)


@dataclass
class CaptureModel:
    """What each operation's steps capture, as declared by the profile (for lint)."""

    captures: dict[str, list[set[str]]] = field(default_factory=dict)  # op -> per step
    adapter: bool = False  # a Python adapter may capture anything

    def before(self, op: str) -> set[str]:
        """Names captured by the operations that always run before `op` on the same subject."""
        u = use(op)
        if u.after is None:
            return set()
        names: set[str] = set()
        for prior in u.after:
            names |= self.all_of(prior)
        if u.from_ledger:
            names = {n for n in names if kept_by_ledger(n)}
        return names

    def all_of(self, op: str) -> set[str]:
        return set().union(*self.captures.get(op, [set()]))


__all__ = ["OperationUse", "USES", "CaptureModel", "kept_by_ledger", "shared_fields", "use"]


def shared_fields(profile, strategies: dict[str, str]) -> list[str]:
    """The content fields `interact` writes into the shared space (what each subject contributes).

    A content field (strategy `content`) named in interact's templates, for the subject or for
    the decoy: a message is its author's, so the subject's export owes the subject's and must not
    hold the decoy's, and deleting the subject must leave the decoy's."""
    import re

    op = profile.operation("interact") or {}
    named = set(re.findall(r"\{\{\s*(?:subject|decoy|control)\.([A-Za-z_]\w*)\s*\}\}", repr(op.get("steps", []))))
    return sorted(f for f in named if strategies.get(f) == "content")
