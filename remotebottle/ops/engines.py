"""Every engine this machine's live sessions run on, opened as their session records say.

The engines are the local one, each SSH host a live session runs on, and each cloud
VM a live session made, reached through the Docker tunnel that session published
(`hosts.session_vm`); such a VM is named `<host>/<machine id>`. `rbottle list` and the
dashboard both walk them here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import docker

from remotebottle import state
from remotebottle.errors import BottleError, RemoteBottleError
from remotebottle.hosts import session_vm
from remotebottle.hosts.engine import join_session_vm, open_engine
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.hosts.resolve import HostTarget, recorded_host, resolve_host
from remotebottle.manifest import Manifest

Progress = Callable[[str], None]


@dataclass
class LiveEngines:
    """Open engines by name, and why each one that could not be reached was not."""

    engines: dict[str, docker.DockerClient] = field(default_factory=dict)
    unreachable: dict[str, RemoteBottleError] = field(default_factory=dict)


@contextlib.contextmanager
def live_engines(
    manifest: Manifest,
    *,
    progress: Progress,
    registry: Registry = DEFAULT,
    only: HostTarget | None = None,
) -> Iterator[LiveEngines]:
    """Open the local engine and every engine a live session records; close them after.

    With `only`, just that host's engine (a cloud host: the VMs of its live sessions).
    Nothing is installed or trusted anew on the way, and what cannot be reached is
    reported in `unreachable`, not raised.
    """
    live = state.live_sessions()
    found = LiveEngines()
    with contextlib.ExitStack() as stack:
        if only is not None:
            hosts = [only]
        else:
            names = ["local", *sorted(h for h in live if h != "local")]
            hosts = []
            for name in names:
                try:
                    hosts.append(recorded(name, live.get(name, []), manifest, registry))
                except RemoteBottleError as exc:
                    found.unreachable[name] = exc
        for host in hosts:
            if host.is_cloud:
                for identity in live.get(host.name, []):
                    _join_vm(stack, found, host, identity)
                continue
            try:
                engine = stack.enter_context(
                    open_engine(host, progress=progress, consent=lambda _q: False)
                )
            except RemoteBottleError as exc:
                found.unreachable[host.name] = exc
                continue
            found.engines[host.name] = engine.client
        yield found


def recorded(
    name: str, identities: list[str], manifest: Manifest, registry: Registry
) -> HostTarget:
    """Host `name` as its live sessions recorded it (older state: `manifest`'s entry)."""
    for identity in identities:
        with contextlib.suppress(BottleError):
            entry = state.read_metadata(identity).host_entry
            if entry is not None:
                return recorded_host(name, entry, registry)
    return resolve_host(name, manifest, registry)


def _join_vm(
    stack: contextlib.ExitStack, found: LiveEngines, host: HostTarget, identity: str
) -> None:
    try:
        vm = session_vm.published(identity)
        if vm is None:  # ended without saying so (killed), or not up yet
            return
        engine = stack.enter_context(join_session_vm(host, identity))
    except RemoteBottleError as exc:
        found.unreachable[f"{host.name} ({identity})"] = exc
        return
    found.engines[f"{host.name}/{vm.machine_id}"] = engine.client
