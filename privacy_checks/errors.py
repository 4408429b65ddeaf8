"""Errors a user can cause. Each carries one message that names the file, field, URL or store."""


class PrivacyChecksError(Exception):
    """Base for errors shown to the user as one clear line, never a traceback."""


class ProfileError(PrivacyChecksError):
    """A target profile is unreadable or invalid."""


class TargetError(PrivacyChecksError):
    """The target could not be driven (unreachable, unexpected status, timeout, refused host)."""


class UnexpectedStatus(TargetError):
    """The target answered, but not with a status the step expects."""

    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status


class PollTimeout(TargetError):
    """A polled condition never held within its timeout (e.g. a request that never completes)."""

    def __init__(self, message: str, last_status: int | None, last_body: str) -> None:
        super().__init__(message)
        self.last_status = last_status
        self.last_body = last_body


class StoreError(PrivacyChecksError):
    """A data store could not be swept."""


class LedgerError(PrivacyChecksError):
    """The ledger is unreadable, corrupt or from a newer version."""
