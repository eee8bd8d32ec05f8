"""A bottle's capability changes: Dockerfile lines kept with its state, built at resume.

Approved capability proposals accumulate in `state/<identity>/capability.Dockerfile`
as lines run as root on top of the agent image: packages as one offline install line
(`derived.install_line`), then the approved fragment. `rbottle resume <identity>` builds
the bottle's own image from them; only the package download has network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from remotebottle import state
from remotebottle.backend.docker import derived
from remotebottle.supervise import rules


def path(identity: str) -> Path:
    return state.state_dir(identity) / "capability.Dockerfile"


def read(identity: str) -> str | None:
    file = path(identity)
    return file.read_text() if file.is_file() else None


def render(payload: dict[str, Any]) -> str:
    """Dockerfile lines for one approved capability proposal (checked again here: these
    lines run as root in the bottle's image)."""
    checked = rules.check("capability", payload, operator=True)
    lines = [derived.install_line(checked["packages"])] if checked["packages"] else []
    fragment = str(checked["dockerfile"]).strip()
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
