"""Pending proposals across every engine with live bottles: what the dashboard reads.

The engines are the local one, each SSH host a live session of this machine runs on
(from local state), and each cloud VM a live session made, reached through the Docker
tunnel that session published (`hosts.session_vm`); such a VM is listed as
`<host>/<machine id>`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import docker

from remotebottle import state
from remotebottle.backend.docker import egress
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.errors import BottleError, RemoteBottleError
from remotebottle.hosts import session_vm
from remotebottle.hosts.engine import join_session_vm, open_engine
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.hosts.resolve import HostTarget, recorded_host, resolve_host
from remotebottle.manifest import Manifest
from remotebottle.supervise import apply, queue
from remotebottle.supervise.model import Decision, Proposal

Progress = Callable[[str], None]


@dataclass
class EngineSources:
    """A `ProposalSource` over several engines, by host name."""

    engines: dict[str, docker.DockerClient] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)

    def pending(self) -> list[Proposal]:
        found: list[Proposal] = []
        for host, client in self.engines.items():
            found += [p.model_copy(update={"host": host}) for p in queue.pending(client)]
        return sorted(found, key=lambda p: p.created_at)

    def bottles(self) -> list[tuple[str, str]]:
        """Running bottles as (identity, host), for operator edits without a proposal."""
        return [
            (info.identity, host)
            for host, client in self.engines.items()
            for info in DockerBottleBackend(client).list_active()
            if info.status == "running"
        ]

    def allowlist(self, identity: str, host: str) -> list[str] | None:
        """A running bottle's egress allowlist; None when it has no egress proxy."""
        client = self.engines.get(host)
        if client is None:
            return None
        try:
            return egress.current_allowlist(client, identity)
        except RemoteBottleError:
            return None

    def decide(self, proposal: Proposal, decision: Decision) -> None:
        client = self.engines.get(proposal.host)
        if client is None:
            raise BottleError(f"host {proposal.host} is not connected")
        apply.decide(client, proposal, decision, answer=queue.answer)


@contextlib.contextmanager
def open_sources(
    manifest: Manifest, *, progress: Progress, registry: Registry = DEFAULT
) -> Iterator[EngineSources]:
    """Connect to the local engine, every host with a live session and every live
    session's cloud VM; yield the sources. What cannot be reached is reported in
    `unreachable`, not fatal."""
    sources = EngineSources()
    live = state.live_sessions()
    with contextlib.ExitStack() as stack:
        for name in ["local", *sorted(h for h in live if h != "local")]:
            try:
                host = _live_host(name, live.get(name, []), manifest, registry)
                if host.is_cloud:
                    for identity in live[name]:
                        _join_vm(stack, sources, host, identity)
                    continue
                engine = stack.enter_context(
                    open_engine(host, progress=progress, consent=lambda _q: False)
                )
            except RemoteBottleError as exc:
                sources.unreachable[name] = exc.message
                continue
            sources.engines[name] = engine.client
        yield sources


def _live_host(
    name: str, identities: list[str], manifest: Manifest, registry: Registry
) -> HostTarget:
    """Host `name` as its live sessions recorded it (older state: today's manifest)."""
    for identity in identities:
        with contextlib.suppress(BottleError):
            entry = state.read_metadata(identity).host_entry
            if entry is not None:
                return recorded_host(name, entry, registry)
    return resolve_host(name, manifest, registry)


def _join_vm(
    stack: contextlib.ExitStack, sources: EngineSources, host: HostTarget, identity: str
) -> None:
    try:
        vm = session_vm.published(identity)
        if vm is None:  # ended without saying so (killed), or not up yet
            return
        engine = stack.enter_context(join_session_vm(host, identity))
    except RemoteBottleError as exc:
        sources.unreachable[f"{host.name} ({identity})"] = exc.message
        return
    sources.engines[f"{host.name}/{vm.machine_id}"] = engine.client
