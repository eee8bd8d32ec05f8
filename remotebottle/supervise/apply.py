"""Carrying out a decision: the change applied to the running bottle, audited, answered.

Order matters: apply, then record, then answer the waiting agent. A failure while
applying raises before anything is recorded or answered, so the proposal stays
pending and nothing is half-granted. Egress and credential routes are changed live
(no restart); a capability change is written next to the bottle's state, the
transcript kept, and the bottle torn down for `rbottle resume` to rebuild it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import docker

from remotebottle import state
from remotebottle.backend.docker import credproxy, egress
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.errors import BottleError
from remotebottle.supervise import audit, capability, queue, rules
from remotebottle.supervise.model import Decision, Proposal, is_operator_initiated

Change = tuple[Any, Any]  # (before, after), with no secret values
Answer = Callable[[docker.DockerClient, Proposal, Decision], None]


def decide(
    client: docker.DockerClient, proposal: Proposal, decision: Decision, *, answer: Answer
) -> dict[str, Any]:
    """Apply an approved `decision` (a rejection changes nothing), audit it, answer the agent.

    Returns the audit entry. Raises (RemoteBottleError) with the proposal still pending.
    """
    own = is_operator_initiated(proposal)
    payload = proposal.payload  # a rejection applies nothing
    if decision.approve:
        # The operator's own words may name what an agent's may not (mixed scripts, ...).
        by_operator = own or decision.payload is not None
        payload = rules.check(proposal.kind, decision.payload or payload, operator=by_operator)
    if not own and proposal.id not in {p.id for p in queue.pending(client, proposal.identity)}:
        raise BottleError(
            f"proposal {proposal.id} is no longer pending (answered, timed out or withdrawn)"
        )
    before = after = None
    if decision.approve:
        if proposal.kind == "cred-route" and not own:
            _refuse_replacing(client, proposal.identity, payload)
        before, after = _APPLY[proposal.kind](client, proposal.identity, payload, decision)
    final = decision.model_copy(update={"payload": payload, "secrets": {}})
    entry = audit.record(proposal, final, before=before, after=after, operator_initiated=own)
    if not own:  # an agent is waiting for this answer
        try:
            answer(client, proposal, final)
        except BottleError as exc:
            if decision.approve:
                late = final.model_copy(update={"reason": f"{final.reason} (applied; {exc})"})
                audit.record(proposal, late, before=after, after=after)
            raise BottleError(
                f"the change is applied, but the agent did not get the answer: {exc}"
            ) from None
    if decision.approve and proposal.kind == "capability":
        _restart_for_capability(client, proposal.identity)
    return entry


def _refuse_replacing(client: docker.DockerClient, identity: str, payload: dict[str, Any]) -> None:
    """An agent may add a route, not redirect one it already has (the operator may)."""
    names = {r["name"] for r in credproxy.current_table(client, identity)}
    if payload.get("name") in names:
        raise BottleError(
            f"route {payload.get('name')!r} exists: an agent's proposal may not replace it",
            hint="edit the proposal to a new name, or change the route from the bottles table",
        )


def _egress(
    client: docker.DockerClient, identity: str, payload: dict[str, Any], _d: Decision
) -> Change:
    hosts = payload["hosts"]
    before = egress.current_allowlist(client, identity)
    after = sorted(set(before) | set(hosts))
    egress.reload_allowlist(client, identity, after)
    return before, after


def _cred_route(
    client: docker.DockerClient, identity: str, payload: dict[str, Any], decision: Decision
) -> Change:
    name, upstream, headers = payload["name"], payload["upstream"], payload["headers"]
    missing = [h for h in headers if not decision.secrets.get(h)]
    if missing:
        raise BottleError(
            f"approving route {name!r} needs a value for {', '.join(missing)}",
            hint="the operator supplies header values; the agent never sees them",
        )
    table = credproxy.current_table(client, identity)
    before = [_shown(r) for r in table]
    route = {
        "name": name,
        "upstream": upstream,
        "inject": {h: decision.secrets[h] for h in headers},
    }
    table = [r for r in table if r["name"] != name] + [route]
    credproxy.reload_table(client, identity, json.dumps({"routes": table}).encode())
    return before, [_shown(r) for r in table]


def _capability(
    client: docker.DockerClient, identity: str, payload: dict[str, Any], _d: Decision
) -> Change:
    before = capability.read(identity)
    after = capability.write(identity, payload)
    return before, after


def _restart_for_capability(client: docker.DockerClient, identity: str) -> None:
    """Keep the transcript, then take the bottle down for `rbottle resume` to rebuild."""
    backend = DockerBottleBackend(client)
    agents = [b for b in backend.list_active() if b.identity == identity]
    if agents:
        snapshot = backend.snapshot_transcript(agents[0].containers[0])
        if snapshot:
            directory = state.transcript_dir(identity)
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            (directory / "projects.tar").write_bytes(snapshot)
    backend.teardown(identity)


def _shown(route: dict[str, Any]) -> dict[str, Any]:
    """A route as the audit log keeps it: header names, never their values."""
    headers = sorted(route["inject"])
    return {"name": route["name"], "upstream": route["upstream"], "headers": headers}


_APPLY: dict[str, Callable[[docker.DockerClient, str, dict[str, Any], Decision], Change]] = {
    "egress": _egress,
    "cred-route": _cred_route,
    "capability": _capability,
}
