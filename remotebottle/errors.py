"""The one error hierarchy: each error carries the user-facing message and a hint.

`remotebottle.cli.main` is the only place that prints them.
"""

from __future__ import annotations


class RemoteBottleError(Exception):
    """Base of every error a user is meant to read.

    Args:
        message: one line saying what went wrong.
        hint: one line saying what to do about it, or "".
    """

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(RemoteBottleError):
    """The command line itself is wrong."""

    exit_code = 2


class ManifestError(RemoteBottleError):
    """A manifest cannot be read or does not validate."""


class HostError(RemoteBottleError):
    """A host entry cannot be resolved or reached."""


class ConnectError(HostError):
    """An SSH connection failed or a host key was refused."""


class ProvisionError(HostError):
    """A machine could not be created or prepared."""


class BottleError(RemoteBottleError):
    """A bottle could not be planned, launched or run."""


class EngineError(BottleError):
    """The Docker engine is unreachable or refused a request."""


class ImageMismatchError(BottleError):
    """An image on a host is not the one recorded for the bottle: someone changed it."""


class TeardownError(RemoteBottleError):
    """Something could not be removed; the message lists what leaked."""


class NotAvailableYet(RemoteBottleError):
    """A subcommand whose implementation has not landed yet."""

    exit_code = 3


class TranscriptError(BottleError):
    """A transcript snapshot is too large, unreadable, or could not be saved or restored."""
