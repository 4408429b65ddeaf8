"""Errors a user can cause. Each carries one message that names the file, field, URL or store."""


class PrivacyChecksError(Exception):
    """Base for errors shown to the user as one clear line, never a traceback."""


class ProfileError(PrivacyChecksError):
    """A target profile is unreadable or invalid."""


class TargetError(PrivacyChecksError):
    """The target could not be driven (unreachable, unexpected status, timeout, refused host)."""


class StoreError(PrivacyChecksError):
    """A data store could not be swept."""


class LedgerError(PrivacyChecksError):
    """The ledger is unreadable, corrupt or from a newer version."""
