"""Pending proposals across every engine with live bottles (`ops.engines`): what the
dashboard reads."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import docker

from remotebottle.backend.docker import egress
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.errors import BottleError, RemoteBottleError
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.manifest import Manifest
from remotebottle.ops.engines import live_engines
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
    """Connect to every engine with live bottles (`ops.engines`); yield the sources.
    What cannot be reached is reported in `unreachable`, not fatal."""
    with live_engines(manifest, progress=progress, registry=registry) as live:
        unreachable = {name: exc.message for name, exc in live.unreachable.items()}
        yield EngineSources(engines=live.engines, unreachable=unreachable)
