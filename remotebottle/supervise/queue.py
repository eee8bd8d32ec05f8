"""The proposals waiting in the bottles of one engine, read and answered through it.

Each bottle's supervisor sidecar holds its agent's proposals in memory; this module
reaches them by exec'ing the sidecar's control command through the engine (the local
one, or a VM's through the session's SSH tunnel). Nothing here applies a change: the
caller does that, then `answer`s the agent.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
from pydantic import ValidationError

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker import supervisor
from remotebottle.backend.docker.supervisor import ProposalGone
from remotebottle.errors import BottleError, EngineError, printable
from remotebottle.supervise.model import Decision, Proposal

__all__ = ["ProposalGone", "answer", "pending"]


def pending(client: docker.DockerClient, identity: str | None = None) -> list[Proposal]:
    """Every proposal waiting for a decision in the running bottles on `client`'s engine
    (or in bottle `identity` only), oldest first."""
    found: list[Proposal] = []
    for container in supervisor.running(client, identity):
        try:
            listing = supervisor.list_pending(client, str(container.id))
        except EngineError:
            if _still_running(container):
                raise
            continue  # its bottle ended meanwhile
        found.extend(_proposal(item, container.labels) for item in listing)
    return sorted(found, key=lambda p: (p.created_at, p.identity, p.id))


def _still_running(container: Any) -> bool:
    try:
        container.reload()
    except docker.errors.DockerException:
        return False
    return bool(container.status == "running")


def _proposal(item: Any, labels: dict[str, str]) -> Proposal:
    try:
        return Proposal.model_validate(
            {
                **(item if isinstance(item, dict) else {}),
                "identity": labels.get(L.IDENTITY, "?"),
                "host": labels.get(L.HOST, "local"),
                "status": "pending",
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise BottleError(
            f"a supervisor listed a malformed proposal ({exc.error_count()} problems,"
            f" the first: {printable(where, 100)}: {printable(first['msg'])})"
        ) from None


def answer(client: docker.DockerClient, proposal: Proposal, decision: Decision) -> None:
    """Deliver `decision` to the agent waiting on `proposal`.

    Only the approval, the reason and the (possibly edited) payload travel: never
    `decision.secrets`. Raises `ProposalGone` when nobody waits for it any more (already
    decided, timed out, withdrawn by the agent, or the bottle is gone).
    """
    found = supervisor.running(client, proposal.identity)
    if not found:
        raise ProposalGone(
            f"proposal {proposal.id}: bottle {proposal.identity} has no running supervisor"
        )
    reply = {"approve": decision.approve, "reason": decision.reason, "payload": decision.payload}
    try:
        supervisor.deliver(client, str(found[0].id), proposal.id, reply)
    except EngineError:
        if _still_running(found[0]):
            raise
        raise ProposalGone(f"proposal {proposal.id}: bottle {proposal.identity} ended") from None
