"""The one error hierarchy: each error carries the user-facing message and a hint.

`remotebottle.cli.main` is the only place that prints them.
"""

from __future__ import annotations

import unicodedata


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


class TranscriptError(BottleError):
    """A transcript snapshot is too large, unreadable, or could not be saved or restored."""


# What a message may show of the values in it: they come from files and arguments anyone
# may have written, and the terminal acts on some characters (escape sequences, bidi).
MAX_LINE = 1000
MAX_VALUE = 200
# Control, invisible formatting (bidi), line and paragraph separators, lone surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def is_plain(text: str) -> bool:
    """Whether `text` holds no character a terminal acts on or does not show."""
    return text.isprintable() or not any(unicodedata.category(c) in _HIDDEN for c in text)


def quoted(value: object, limit: int = MAX_VALUE) -> str:
    """`value` as a message quotes it: its repr (control, bidi and other invisible
    characters escaped), cut to about `limit` characters."""
    return clipped(repr(value), limit)


def printable(line: str, limit: int = MAX_LINE) -> str:
    """One line of a message as a terminal may show it: each character it would act on or
    not show (control, bidi, line separators, lone surrogates) escaped, cut to `limit`."""
    if not line.isprintable():  # checked whole first: most lines are
        line = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)
    return clipped(line, limit)


def clipped(text: str, limit: int) -> str:
    """`text`, its middle cut out when it is over `limit` characters."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3) :]
    return f"{head}…[{len(text) - len(head) - len(tail)} characters]…{tail}"
