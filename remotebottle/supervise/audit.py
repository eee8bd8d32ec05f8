"""The audit log: one append-only JSONL file per bottle, kept with its state.

Each line says who decided what and when, what the proposal asked, the change as
before -> after, and the decision. Secret values never enter it: a credential route
is recorded by name, upstream and header names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from remotebottle import state
from remotebottle.supervise.model import Decision, Proposal


def log_path(identity: str) -> Path:
    return state.state_dir(identity) / "audit.jsonl"


def record(
    proposal: Proposal,
    decision: Decision,
    *,
    before: Any = None,
    after: Any = None,
    operator_initiated: bool = False,
) -> dict[str, Any]:
    """Append one entry for `proposal` and its `decision`; return it."""
    entry = {
        "time": state.now(),
        "identity": proposal.identity,
        "host": proposal.host,
        "proposal": proposal.id,
        "kind": proposal.kind,
        "requested_by": "operator" if operator_initiated else "agent",
        "decided_by": decision.operator,
        "decision": "approved" if decision.approve else "rejected",
        "reason": decision.reason,
        "agent_reason": proposal.reason,
        "asked": proposal.payload,
        "granted": (decision.payload or proposal.payload) if decision.approve else None,
        "before": before,
        "after": after,
    }
    _append(proposal.identity, [entry])
    return entry


def record_refusals(identity: str, refusals: list[dict[str, str]]) -> None:
    """Append what the bottle's proxies refused during its session (see
    `backend.docker.refusals`), one entry each, with kind "refused"."""
    _append(identity, [{"identity": identity, "kind": "refused", **r} for r in refusals])


def _append(identity: str, entries: list[dict[str, Any]]) -> None:
    if not entries:
        return
    path = log_path(identity)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as out:
        out.writelines(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)


def read(identity: str) -> list[dict[str, Any]]:
    path = log_path(identity)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
