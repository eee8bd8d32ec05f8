"""Editing a payload in `$EDITOR`, checking its shape, and operator-initiated edits.

An operator edit with no proposal behind it (a running bottle's allowlist or
routes) is answered like any proposal: the dashboard makes a synthetic
`Proposal` whose id starts with `OPERATOR_PREFIX` and hands the source an
approving `Decision` for it. The source recognises it with
`is_operator_initiated`: it applies and audits the change but has no waiting
agent to answer.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from remotebottle.supervise.model import OPERATOR_PREFIX, Kind, Proposal

# What the editor starts from for an operator edit: an addition, in the same
# shape an agent's proposal of that kind has.
TEMPLATES: dict[Kind, dict[str, Any]] = {
    "egress": {"hosts": []},
    "cred-route": {"name": "", "upstream": "https://", "headers": [], "role": None},
}


class EditError(Exception):
    """The edit produced nothing usable; the proposal stays pending."""


def editor_command() -> list[str]:
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    argv = shlex.split(command)
    if not argv:
        raise EditError("$EDITOR is empty")
    return argv


def edit_json(
    payload: dict[str, Any], kind: Kind, run_editor: Callable[[list[str]], int]
) -> dict[str, Any]:
    """Write `payload` to a private temp file, run the editor on it, and read it back.

    `run_editor` runs the argv given and returns its exit status (the app suspends
    itself around it). The temp file is removed whatever happens.
    """
    fd, name = tempfile.mkstemp(prefix="rbottle-proposal-", suffix=".json")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(payload, indent=2) + "\n")
        status = run_editor([*editor_command(), str(path)])
        if status != 0:
            raise EditError(f"editor exited with status {status}; nothing changed")
        try:
            edited = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EditError(f"edited payload is not valid JSON: {exc}") from None
    finally:
        path.unlink(missing_ok=True)
    if not isinstance(edited, dict):
        raise EditError("edited payload must be a JSON object")
    check_payload(kind, edited)
    return edited


def _string_list(payload: dict[str, Any], key: str, *, required: bool) -> list[str]:
    value = payload.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise EditError(f'"{key}" must be a list of non-empty strings')
    if required and not value:
        raise EditError(f'"{key}" must name at least one entry')
    return value


def _string(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise EditError(f'"{key}" must be a non-empty string')
    return value


def check_payload(kind: Kind, payload: dict[str, Any]) -> None:
    """The shape `Proposal.payload` documents for `kind`; deeper checks are the source's."""
    if kind == "egress":
        _string_list(payload, "hosts", required=True)
    elif kind == "cred-route":
        _string(payload, "name")
        if not _string(payload, "upstream").startswith("https://"):
            raise EditError('"upstream" must be an https:// URL')
        _string_list(payload, "headers", required=False)
        role = payload.get("role")
        if role is not None and not isinstance(role, str):
            raise EditError('"role" must be a string or null')
    else:
        packages = _string_list(payload, "packages", required=False)
        fragment = payload.get("dockerfile", "")
        if not isinstance(fragment, str):
            raise EditError('"dockerfile" must be a string')
        if not packages and not fragment.strip():
            raise EditError('a capability needs "packages" or a "dockerfile" fragment')


def operator_proposal(
    kind: Kind, identity: str, host: str, payload: dict[str, Any], operator: str
) -> Proposal:
    """A synthetic, already-edited proposal standing for an operator's own change."""
    return Proposal(
        id=f"{OPERATOR_PREFIX}{secrets.token_hex(6)}",
        identity=identity,
        host=host,
        kind=kind,
        payload=payload,
        reason=f"operator-initiated edit by {operator}",
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
