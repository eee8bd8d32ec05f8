"""`rbottle cleanup --orphans`: cloud resources tagged as ours whose session is gone.

A resource is an orphan when this machine's state says its session ended, when it is
past its expiry and no session of this machine still runs it, or when it is a key pair
or security group whose VM no longer runs. A VM kept with `reuse: true` is an orphan
only once expired.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from remotebottle import state
from remotebottle.errors import BottleError
from remotebottle.hosts.provider import OwnedResource, Provider

Progress = Callable[[str], None]

VM_KINDS = frozenset({"instance", "machine"})
GONE_STATES = frozenset({"terminated", "shutting-down", "stopped", "stopping", "destroyed"})


@dataclass(frozen=True)
class SessionState:
    known: bool
    ended: bool


def session_state(identity: str) -> SessionState:
    try:
        meta = state.read_metadata(identity)
    except BottleError:
        return SessionState(known=False, ended=False)
    return SessionState(known=True, ended=meta.ended_at is not None)


def orphans(
    resources: Iterable[OwnedResource],
    now: datetime.datetime,
    session: Callable[[str], SessionState] = session_state,
) -> list[OwnedResource]:
    """The resources to sweep, VMs first."""
    owned = list(resources)
    live_vms = {r.identity for r in owned if r.kind in VM_KINDS and r.state not in GONE_STATES}
    chosen: list[OwnedResource] = []
    for resource in owned:
        is_vm = resource.kind in VM_KINDS
        if is_vm and resource.state in GONE_STATES and resource.state != "stopped":
            continue  # already on its way out
        seen = session(resource.identity)
        if (
            (seen.ended and not resource.identity.startswith("reuse-"))
            or (resource.is_expired(now) and not (seen.known and not seen.ended))
            or (not is_vm and resource.identity not in live_vms and _settled(resource, now))
        ):
            chosen.append(resource)
    return sorted(chosen, key=lambda r: (r.kind not in VM_KINDS, r.resource_id))


# Key pairs and security groups are made before their VM: a younger one may belong to a
# session that is being created right now (in another terminal, or on another machine).
CREATE_GRACE = datetime.timedelta(minutes=30)


def _settled(resource: OwnedResource, now: datetime.datetime) -> bool:
    return resource.created_at is None or now - resource.created_at > CREATE_GRACE


def describe(resource: OwnedResource) -> str:
    created = resource.created_at.isoformat(timespec="minutes") if resource.created_at else "?"
    state_text = f", {resource.state}" if resource.state else ""
    return (
        f"{resource.provider} {resource.kind} {resource.resource_id}"
        f" (session {resource.identity}, created {created}{state_text})"
    )


def sweep(found: list[tuple[Provider, list[OwnedResource]]], *, progress: Progress) -> None:
    for provider, resources in found:
        if resources:
            provider.destroy_owned(resources, progress=progress)
