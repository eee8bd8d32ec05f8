"""`rbottle cleanup`: what a host's engine holds of ours, with the engine open to remove it;
and the bottles whose `rbottle` was killed mid-session (`--orphans`).

The cloud side (VMs and what was made for them, left by lost sessions) is `ops.orphans`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from remotebottle import state
from remotebottle.backend.base import CleanupPlan
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.backend.docker.labels import IDENTITY, ROLE, ROLE_AGENT
from remotebottle.errors import RemoteBottleError
from remotebottle.hosts.engine import open_engine
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.hosts.resolve import HostTarget
from remotebottle.ops.attach import host_of
from remotebottle.ops.orphans import abandoned
from remotebottle.ops.session import save

Progress = Callable[[str], None]


def _refuse(_question: str) -> bool:
    return False


@contextlib.contextmanager
def cleanup_on(host: HostTarget, *, progress: Progress) -> Iterator[CleanupSession]:
    """What `rbottle cleanup` would remove on `host`, with the engine open to remove it."""
    with open_engine(host, progress=progress, consent=_refuse) as engine:
        backend = DockerBottleBackend(engine.client, progress)
        yield CleanupSession(backend, backend.prepare_cleanup())


@dataclass(frozen=True)
class CleanupSession:
    backend: DockerBottleBackend
    plan: CleanupPlan


@dataclass(frozen=True)
class Abandoned:
    """A bottle on the local engine or an SSH host whose session's `rbottle` was killed:
    it runs on with nobody attached. (On a VM made for its session, the VM is the orphan:
    `ops.orphans`.)"""

    meta: state.Metadata
    host: HostTarget

    def describe(self) -> str:
        return (
            f"bottle {self.meta.identity} on {self.host.name} (started {self.meta.started_at};"
            f" its rbottle is gone: `rbottle attach {self.meta.identity}` would take it over)"
        )


def abandoned_bottles(registry: Registry = DEFAULT) -> list[Abandoned]:
    """The bottles this machine started whose `rbottle` is gone without ending them."""
    found = []
    for identity in state.known_identities():
        try:
            meta = state.read_metadata(identity)
            if not abandoned(meta):
                continue
            host = host_of(identity, registry)
        except RemoteBottleError:
            continue
        if not host.is_cloud:
            found.append(Abandoned(meta, host))
    return found


def end_abandoned(bottle: Abandoned, *, progress: Progress) -> None:
    """End it as its session would have: the transcript and the proxies' refusals saved,
    the session marked ended, the bottle removed."""
    identity = bottle.meta.identity
    with open_engine(bottle.host, progress=progress, consent=_refuse) as engine:
        backend = DockerBottleBackend(engine.client, progress)
        agents = engine.client.containers.list(
            all=True, filters={"label": [f"{IDENTITY}={identity}", f"{ROLE}={ROLE_AGENT}"]}
        )
        try:
            if agents:
                save(backend, str(agents[0].id), bottle.meta)
            else:
                state.write_metadata(replace(bottle.meta, ended_at=state.now(), phase="ended"))
        finally:
            progress(f"removing bottle {identity} from {bottle.host.name}")
            backend.teardown(identity)
