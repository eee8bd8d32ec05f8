"""Identities and the per-bottle state directory.

An identity is `<agent>-<5 random base36 chars>`, minted per launch. State for
it lives in `$REMOTEBOTTLE_HOME/state/<identity>/` (default: the XDG state dir).
"""

from __future__ import annotations

import os
import re
import secrets
import string
from pathlib import Path

from remotebottle.errors import BottleError

_ALPHABET = string.digits + string.ascii_lowercase
IDENTITY_RE = re.compile(r"^(?P<agent>[a-z0-9][a-z0-9_-]{0,39})-(?P<suffix>[0-9a-z]{5})$")


def mint_identity(agent: str) -> str:
    """A fresh identity for one launch of `agent`."""
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(5))
    return f"{agent}-{suffix}"


def parse_identity(identity: str) -> tuple[str, str]:
    """Split an identity into (agent, suffix).

    Raises:
        BottleError: it is not of the form `<agent>-<5 base36 chars>`.
    """
    match = IDENTITY_RE.match(identity)
    if not match:
        raise BottleError(
            f"{identity!r} is not a bottle identity"
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
