"""Return to a bottle left running: reopen the host its session recorded and attach."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import docker
import docker.errors

from remotebottle import state
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.backend.docker.provision import AGENT_UID, RELEASE_COMMAND
from remotebottle.errors import BottleError, EngineError, RemoteBottleError
from remotebottle.hosts import session_vm
from remotebottle.hosts.engine import Consent, open_engine
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.hosts.resolve import HostTarget, recorded_host, resolve_host
from remotebottle.image_pins import check_containers
from remotebottle.manifest import Manifest, default_paths, load
from remotebottle.ops import checkpoint
from remotebottle.ops.checkpoint import Checkpoints
from remotebottle.ops.engine_wait import BottleLost
from remotebottle.ops.link import RECONNECT_LIMIT, LinkGone, stay_attached
from remotebottle.ops.session import (
    Outcome,
    Progress,
    gone,
    lost,
    recorded_images,
    refuse,
    save,
)


def attach(
    identity: str,
    *,
    progress: Progress,
    consent: Consent = refuse,
    registry: Registry = DEFAULT,
    reconnect_limit: float = RECONNECT_LIMIT,
) -> Outcome:
    """Return to a running bottle wherever it runs; end it when its agent exits.

    A bottle on a VM made for its session is reached through the VM its session recorded
    (its `rbottle` was killed, or lost the link): this attach takes the session over, and
    the VM is destroyed when it ends, as the session would have destroyed it. A network
    cut is ridden out as in the session (`stay_attached`).
    """
    state.parse_identity(identity)
    host = host_of(identity, registry, progress)
    if host.per_session and session_vm.claimed(identity):
        raise BottleError(
            f"{identity} is still running in another `rbottle` on this machine, which"
            f" destroys its VM ({host.name}) when it ends",
            hint="go back to that terminal; attach once it is gone",
        )
    # A bottle this machine has no record of is no session of ours to hold (nor to write for).
    session = identity if state.has_state(identity) else None
    with open_engine(
        host, progress=progress, consent=consent, session=session, rejoin=True
    ) as engine:
        client = engine.client
        backend = DockerBottleBackend(client, progress)
        containers = L.find(client, role=L.ROLE_AGENT, identity=identity)
        if not containers or containers[0].status != "running":
            raise BottleError(
                f"no running bottle {identity} on {host.name}",
                hint="`rbottle list` shows bottles; `rbottle resume` relaunches an ended one",
            )
        container = containers[0]
        check_containers(client, host.name, identity, recorded_images(identity))
        _set_phase(identity, "running")
        copies: Checkpoints | None = None
        try:
            with checkpoint.kept(engine, str(container.id), identity) as copies:
                end = stay_attached(
                    engine,
                    str(container.id),
                    tty=bool(container.attrs.get("Config", {}).get("Tty")),
                    progress=progress,
                    redraw=True,
                    on_attached=lambda: _release(client, str(container.id)),
                    limit=reconnect_limit,
                )
        except LinkGone as exc:
            raise gone(exc, host, identity, copies) from None
        except BottleLost as exc:
            error = lost(exc, host, backend, str(container.id), identity, copies, progress)
            if exc.engine_back:
                try:
                    backend.teardown(identity)
                except RemoteBottleError as err:
                    progress(f"warning: {err.message}")
            raise error from None
        if end.detached and host.per_session:
            progress(f"{host.name} makes a VM per session, which goes now: the bottle ends with it")
            end = replace(end, detached=False)
        if end.detached:
            _set_phase(identity, "detached")
        else:
            try:
                if state.has_state(identity):
                    save(backend, str(container.id), state.read_metadata(identity))
            finally:
                backend.teardown(identity)
    return Outcome(identity, end.exit_code, end.detached)


def _release(client: docker.DockerClient, agent: str) -> None:
    """Let the agent's command go, as the session does once attached: a session killed
    between starting the agent and that leaves it waiting (letting go twice is harmless)."""
    try:
        made = client.api.exec_create(agent, RELEASE_COMMAND, user=str(AGENT_UID))
        client.api.exec_start(made["Id"])
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not start the agent's command: {exc}") from None


def host_of(
    identity: str, registry: Registry = DEFAULT, progress: Progress | None = None
) -> HostTarget:
    """Where a bottle was started: the host its session recorded (older state: its host's
    name in today's manifest); the local engine, said so, when there is no state."""
    if not state.has_state(identity):
        if progress:
            progress(f"no saved state for {identity} on this machine: looking on the local engine")
        return resolve_host(None, Manifest(), registry)
    meta = state.read_metadata(identity)
    if meta.host_entry is not None:
        return recorded_host(meta.host, meta.host_entry, registry)
    return resolve_host(meta.host, manifest_of(meta), registry)


def manifest_of(meta: state.Metadata) -> Manifest:
    """The manifest a bottle was started from: the home file and its project file."""
    if meta.manifest:
        return load([*default_paths()[:1], Path(meta.manifest)])
    return load(default_paths(cwd=Path(meta.cwd)) if meta.cwd else default_paths()[:1])


def _set_phase(identity: str, phase: str) -> None:
    if state.has_state(identity):
        state.write_metadata(replace(state.read_metadata(identity), phase=phase))
