"""A bottle's capability changes: Dockerfile lines kept with its state, built at resume.

Approved capability proposals accumulate in `state/<identity>/capability.Dockerfile`
as lines run as root on top of the agent image (packages become one apt-get line).
`rbottle resume <identity>` builds the bottle's own image from them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from remotebottle import state
from remotebottle.errors import BottleError

# As the supervisor files them: a Debian package name, optionally pinned (`name=version`).
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}(=[A-Za-z0-9.+~:_-]{1,100})?$")
MAX_FRAGMENT = 16 * 1024


def path(identity: str) -> Path:
    return state.state_dir(identity) / "capability.Dockerfile"


def read(identity: str) -> str | None:
    file = path(identity)
    return file.read_text() if file.is_file() else None


def render(payload: dict[str, Any]) -> str:
    """Dockerfile lines for one approved capability proposal."""
    packages = payload.get("packages") or []
    fragment = str(payload.get("dockerfile") or "").strip()
    if not isinstance(packages, list) or not all(
        isinstance(p, str) and _PACKAGE.match(p) for p in packages
    ):
        raise BottleError(f"capability proposal: {packages!r} are not Debian package names")
    if not packages and not fragment:
        raise BottleError("capability proposal: neither packages nor Dockerfile lines")
    if len(fragment) > MAX_FRAGMENT or re.search(r"(?im)^\s*FROM\s", fragment):
        raise BottleError("capability proposal: Dockerfile lines must not start a new stage")
    lines = []
    if packages:
        lines.append(
            "RUN apt-get update && apt-get install -y --no-install-recommends "
            + " ".join(packages)
            + " && rm -rf /var/lib/apt/lists/*"
        )
    if fragment:
        lines.append(fragment)
    return "\n".join(lines) + "\n"


def write(identity: str, payload: dict[str, Any]) -> str:
    """Add one approved proposal's lines to the bottle's file; return the whole file."""
    content = (read(identity) or "") + render(payload)
    file = path(identity)
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    file.write_text(content)
    return content
