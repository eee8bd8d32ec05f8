"""Pending proposals across every engine with live bottles: what the dashboard reads.

The engines are the local one and each SSH host a live session of this machine runs
on (from local state). A VM made for one session is reachable only from the process
that made it (its login key lives there), so its bottles are not listed here.
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
from remotebottle.hosts.cloud import is_cloud
from remotebottle.hosts.engine import open_engine
from remotebottle.hosts.resolve import resolve_host
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


def live_hosts() -> list[str]:
    """Hosts where this machine's state says a session is still running."""
    hosts = set()
    for identity in state.known_identities():
        with contextlib.suppress(BottleError):
            meta = state.read_metadata(identity)
            if meta.ended_at is None:
                hosts.add(meta.host)
    return sorted(hosts)


@contextlib.contextmanager
def open_sources(manifest: Manifest, *, progress: Progress) -> Iterator[EngineSources]:
    """Connect to the local engine and every host with a live session; yield the sources.
    A host that cannot be reached is reported in `unreachable`, not fatal."""
    sources = EngineSources()
    with contextlib.ExitStack() as stack:
        for name in ["local", *(h for h in live_hosts() if h != "local")]:
            try:
                host = resolve_host(name, manifest)
                if is_cloud(host):
                    sources.unreachable[name] = "a VM made for one session"
                    continue
                engine = stack.enter_context(
                    open_engine(host, progress=progress, consent=lambda _q: False)
                )
            except RemoteBottleError as exc:
                sources.unreachable[name] = exc.message
                continue
            sources.engines[name] = engine.client
        yield sources
