"""Identities and the per-bottle state directory.

An identity is `<agent>-<5 random base36 chars>`, minted per launch. State for
it lives in `$REMOTEBOTTLE_HOME/state/<identity>/` (default: the XDG state dir).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remotebottle.errors import BottleError, is_plain, quoted

_ALPHABET = string.digits + string.ascii_lowercase
IDENTITY_RE = re.compile(r"(?P<agent>[a-z0-9][a-z0-9_-]{0,39})-(?P<suffix>[0-9a-z]{5})")


def mint_identity(agent: str) -> str:
    """A fresh identity for one launch of `agent`."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    return f"{agent}-{suffix}"


def parse_identity(identity: str) -> tuple[str, str]:
    """Split an identity into (agent, suffix).

    Raises:
        BottleError: it is not of the form `<agent>-<5 base36 chars>`.
    """
    match = IDENTITY_RE.fullmatch(identity)
    if not match:
        raise BottleError(
            f"{quoted(identity)} is not a bottle identity"
            " (expected <agent>-<5 chars>, e.g. implementer-k3x9q)",
            hint="`rbottle list` shows the identities of your bottles",
        )
    return match["agent"], match["suffix"]


def home() -> Path:
    """The root of remotebottle's local state."""
    explicit = os.environ.get("REMOTEBOTTLE_HOME")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(xdg) / "remotebottle"


def state_dir(identity: str) -> Path:
    """`state/<identity>/` for a valid identity (not created)."""
    parse_identity(identity)
    return home() / "state" / identity


@dataclass(frozen=True)
class Metadata:
    """`state/<identity>/metadata.json`: enough to list, attach to and resume a bottle."""

    identity: str
    agent: str
    host: str
    started_at: str
    cwd: str | None = None
    copy_cwd: bool = False
    ended_at: str | None = None
    manifest: str | None = None  # the project manifest it was started from, for resume
    # On a VM: the image ID behind each image reference the bottle runs (`image_pins`).
    images: dict[str, str] | None = None
    # The host entry as resolved at start: attach, list and the dashboard reopen this host,
    # not whatever the manifest says by that name now.
    host_entry: dict[str, Any] | None = None
    # Where the session is: launching, running, detached, ended.
    phase: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_metadata(meta: Metadata) -> Path:
    directory = state_dir(meta.identity)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / "metadata.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(meta.to_json())
    tmp.replace(path)
    return path


def has_state(identity: str) -> bool:
    """Whether this machine holds a session record for `identity`."""
    return (state_dir(identity) / "metadata.json").is_file()


def read_metadata(identity: str) -> Metadata:
    """Raises BottleError when no state exists for `identity`."""
    path = state_dir(identity) / "metadata.json"
    try:
        data = json.loads(path.read_text())
        meta = Metadata(**{k: data.get(k) for k in Metadata.__dataclass_fields__ if k in data})
    except FileNotFoundError:
        raise BottleError(
            f"no saved state for {identity} (looked in {path.parent})",
            hint="`rbottle list` shows known bottles; state is written when a bottle starts",
        ) from None
    except (OSError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise BottleError(f"{path}: unreadable state: {exc}") from None
    for name, (holds, wanted) in _FIELDS.items():
        if not holds(getattr(meta, name)):
            raise BottleError(
                f"{path}: unreadable state: `{name}` is not {wanted}",
                hint="the state was written by another rbottle version, or edited",
            )
    if meta.identity != identity:
        raise BottleError(f"{path}: unreadable state: it is the record of another identity")
    return meta


def _str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _text(value: object) -> bool:
    """A name or a time: shown as it is, in `rbottle list` and the preflight."""
    return isinstance(value, str) and len(value) <= 255 and is_plain(value)


def _path(value: object) -> bool:
    return isinstance(value, str) and "\x00" not in value


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


# What each field of a session record holds (the file is JSON anyone may have edited).
_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "identity": (_text, "one line of text"),
    "agent": (_text, "one line of text"),
    "host": (_text, "one line of text"),
    "started_at": (_text, "one line of text"),
    "cwd": (_optional(_path), "a path"),
    "copy_cwd": (lambda value: isinstance(value, bool), "true or false"),
    "ended_at": (_optional(_text), "one line of text"),
    "manifest": (_optional(_path), "a path"),
    "images": (_optional(_str_map), "a map of image IDs"),
    "host_entry": (_optional(lambda value: isinstance(value, dict)), "a host entry"),
    "phase": (_optional(_text), "one line of text"),
}


def transcript_dir(identity: str) -> Path:
    """Where Claude Code's ~/.claude/projects snapshot is kept between sessions."""
    return state_dir(identity) / "transcript"


def snapshot_file(identity: str) -> Path:
    """The tar of ~/.claude/projects saved at the end of the last session."""
    return transcript_dir(identity) / "projects.tar"


def approved_memory_file(identity: str) -> Path:
    """The memory files the operator last approved for a resume, as a tar."""
    return transcript_dir(identity) / "memory-approved.tar"


def known_identities() -> list[str]:
    root = home() / "state"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if IDENTITY_RE.fullmatch(p.name))


def live_sessions() -> dict[str, list[str]]:
    """Identities of the sessions this machine's state says are still running, by host."""
    found: dict[str, list[str]] = {}
    for identity in known_identities():
        with contextlib.suppress(BottleError):
            meta = read_metadata(identity)
            if meta.ended_at is None:
                found.setdefault(meta.host, []).append(identity)
    return found
