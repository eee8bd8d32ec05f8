"""`rbottle cleanup --orphans`: cloud resources tagged as ours whose session is gone.

A resource is an orphan when this machine's state says its session ended, or that it
was abandoned (its `rbottle` was killed mid-session: no process holds it, see
`session_vm.claim`), when it is past its expiry and no session of this machine still
runs it, or when it is a key pair or security group whose VM no longer runs. A VM kept
with `reuse: true` is an orphan only once expired.

`settle_records` then tidies this machine's records of the VMs gone: swept now, or
powered off by their dead-man timer.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from remotebottle import state
from remotebottle.errors import BottleError, RemoteBottleError
from remotebottle.hosts import session_vm
from remotebottle.hosts.provider import OwnedResource, Provider
from remotebottle.hosts.registry import Registry
from remotebottle.hosts.resolve import HostTarget, resolve_host
from remotebottle.manifest import Manifest
from remotebottle.ops.attach import host_of

Progress = Callable[[str], None]

VM_KINDS = frozenset({"instance", "machine"})
GONE_STATES = frozenset({"terminated", "shutting-down", "stopped", "stopping", "destroyed"})


# The phases of a session whose process must be alive: attached, or getting there.
LIVE_PHASES = frozenset({"launching", "running"})


@dataclass(frozen=True)
class SessionState:
    known: bool
    ended: bool
    abandoned: bool = False  # its rbottle is gone without ending or detaching it


def session_state(identity: str) -> SessionState:
    try:
        meta = state.read_metadata(identity)
    except BottleError:
        return SessionState(known=False, ended=False)
    return SessionState(known=True, ended=meta.ended_at is not None, abandoned=abandoned(meta))


def abandoned(meta: state.Metadata) -> bool:
    """Whether the session's `rbottle` was killed mid-session: its record says a process
    runs it, and none holds it. (Records without a phase, from older versions, never are.)"""
    return (
        meta.ended_at is None
        and meta.phase in LIVE_PHASES
        and not session_vm.claimed(meta.identity)
    )


def cloud_hosts(manifest: Manifest, registry: Registry) -> list[HostTarget]:
    """The manifest's cloud hosts, and those this machine's sessions with a VM on record
    were started on (as they recorded them)."""
    hosts = {name: resolve_host(name, manifest, registry) for name in manifest.hosts}
    for identity in state.known_identities():
        with contextlib.suppress(RemoteBottleError):
            if session_vm.published(identity) is not None:
                host = host_of(identity, registry)
                hosts.setdefault(host.name, host)
    return [host for host in hosts.values() if host.is_cloud]


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
            ((seen.ended or seen.abandoned) and not resource.identity.startswith("reuse-"))
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


def is_live_vm(resource: OwnedResource) -> bool:
    return resource.kind in VM_KINDS and resource.state not in GONE_STATES


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


def settle_records(
    hosts: Iterable[str], live_vms: Iterable[str], *, progress: Progress
) -> list[str]:
    """Forget the VM records (and login keys) of sessions on cloud hosts `hosts` whose VM
    is not among `live_vms` (the providers' ids of the VMs still there), and end those
    sessions; their identities. A session whose process still runs is left to it."""
    asked, live = set(hosts), set(live_vms)
    settled = []
    for identity in state.known_identities():
        try:
            meta = state.read_metadata(identity)
            vm = session_vm.published(identity)
        except BottleError:
            continue
        if vm is None or meta.host not in asked or vm.machine_id in live:
            continue
        if session_vm.claimed(identity):
            continue
        session_vm.forget(identity)
        if meta.ended_at is None:
            state.write_metadata(replace(meta, ended_at=state.now(), phase="ended"))
            progress(f"{identity}: its VM {vm.machine_id} is gone, and the bottle with it")
        settled.append(identity)
    return settled
