"""A session: start (and resume) a bottle, stream it, end it; attach to one left running.

It joins the plan (`ops.plan`), the engine (local, or a VM's through the SSH tunnel),
the images (`ops.images`), the backend, the terminal (`ops.stream`) and the session
record in the state directory. The backend itself stays unaware of hosts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import docker

from remotebottle import state
from remotebottle.backend.base import Bottle
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.labels import IDENTITY, ROLE, ROLE_AGENT
from remotebottle.backend.docker.refusals import refusals
from remotebottle.backend.spec import BottlePlan
from remotebottle.errors import BottleError
from remotebottle.hosts.engine import Consent, open_engine
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.hosts.resolve import HostTarget, recorded_host, resolve_host
from remotebottle.image_pins import check_containers
from remotebottle.manifest import Manifest, default_paths, load
from remotebottle.ops.images import place_images
from remotebottle.ops.plan import StartPlan, StartRequest
from remotebottle.ops.stream import SessionEnd, attach_tty, stream_output
from remotebottle.resolve import build_spec
from remotebottle.supervise import audit, capability
from remotebottle.transport.ship import ShipProgress
from remotebottle.values import Prompter, ask_no_echo

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    identity: str
    exit_code: int | None
    detached: bool = False


def _refuse(_question: str) -> bool:
    return False


def wants_tty(plan: BottlePlan) -> bool:
    """Interactive claude always gets a TTY; -p and `-- CMD` only when we have one."""
    if plan.spec.command.mode == "interactive":
        return True
    return sys.stdin.isatty() and sys.stdout.isatty()


def start(
    manifest: Manifest,
    request: StartRequest,
    preview: StartPlan,
    *,
    progress: Progress,
    consent: Consent = _refuse,
    prompter: Prompter = ask_no_echo,
    manifest_file: Path | None = None,
    transcript: Path | None = None,
    on_ship: Callable[[ShipProgress], None] | None = None,
) -> Outcome:
    """Resolve secrets, launch the previewed plan, stream the session, end it cleanly.

    `consent` is asked before changing a host (installing Docker on it). `transcript` is a
    tar of ~/.claude/projects to restore (resume: see `memory.staged`).
    """
    spec = build_spec(
        manifest,
        request.agent,
        command=request.command,
        host=preview.host.name,
        cwd=request.cwd,
        identity=preview.bottle.spec.identity,
        resolve_secrets=True,
        prompter=prompter,
    )
    with open_engine(
        preview.host, progress=progress, consent=consent, session=spec.identity
    ) as engine:
        backend = DockerBottleBackend(engine.client, progress)
        plan = backend.prepare(spec, allow_old_engine=request.allow_old_engine)
        if plan.spec.command.mode == "interactive" and not sys.stdin.isatty():
            raise BottleError(
                "an interactive session needs a terminal",
                hint="use -p PROMPT or `-- CMD` from scripts",
            )
        image_lines = capability.read(spec.identity)
        placed = place_images(
            engine,
            plan,
            progress=progress,
            on_ship=on_ship,
            image_lines=image_lines,
            recorded=_recorded_images(spec.identity),
        )
        meta = state.Metadata(
            identity=spec.identity,
            agent=spec.agent,
            host=spec.host,
            started_at=state.now(),
            cwd=str(request.cwd) if request.cwd else str(Path.cwd()),
            copy_cwd=request.cwd is not None,
            manifest=str(manifest_file) if manifest_file else None,
            images=placed.ids or None,
            host_entry=preview.host.entry.model_dump(mode="json"),
            phase="launching",
        )
        state.write_metadata(meta)
        tty = wants_tty(plan)
        options = LaunchOptions(tty=tty, transcript=transcript, image_lines=image_lines)
        with backend.launch(plan, options) as bottle:
            # The backend makes containers by tag: one moved since `place_images` ends it here.
            check_containers(engine.client, engine.host.name, spec.identity, placed.ids)
            progress(f"bottle {spec.identity} is up on {engine.host.name}")
            meta = replace(meta, phase="running")
            state.write_metadata(meta)
            end = _session(backend, engine.client, bottle, tty=tty, redraw=False)
            if end.detached and preview.host.per_session:
                progress(
                    f"{preview.host.name} makes a VM per session, which goes now: the bottle"
                    " ends with it (with `reuse: true` on the host the VM stays)"
                )
                end = replace(end, detached=False)
            elif end.detached and preview.host.is_cloud:
                ttl = preview.host.ttl_minutes
                progress(
                    f"the VM powers itself off about {ttl} min from now unless you come back:"
                    f" rbottle attach {spec.identity}"
                )
            bottle.keep = end.detached
            if end.detached:
                state.write_metadata(replace(meta, phase="detached"))
            else:
                _save(backend, bottle.agent_container, meta)
    return Outcome(spec.identity, end.exit_code, end.detached)


def _recorded_images(identity: str) -> dict[str, str]:
    """The image IDs an earlier session of `identity` ran (resume), if any."""
    if not state.has_state(identity):
        return {}
    return state.read_metadata(identity).images or {}


def _session(
    backend: DockerBottleBackend,
    client: docker.DockerClient,
    bottle: Bottle,
    *,
    tty: bool,
    redraw: bool,
) -> SessionEnd:
    def release() -> None:
        backend.release(bottle)

    if tty:
        return attach_tty(client, bottle.agent_container, redraw=redraw, on_attached=release)
    return SessionEnd(exit_code=stream_output(client, bottle.agent_container, on_attached=release))


def _save(backend: DockerBottleBackend, container_id: str, meta: state.Metadata) -> None:
    """Keep the transcript and what the proxies refused, and mark the session ended,
    before the bottle goes."""
    try:
        audit.record_refusals(meta.identity, refusals(backend.client, meta.identity))
        save_transcript(backend, container_id, meta.identity)
    finally:
        state.write_metadata(replace(meta, ended_at=state.now(), phase="ended"))


def save_transcript(backend: DockerBottleBackend, container_id: str, identity: str) -> None:
    """Snapshot the agent's ~/.claude/projects into `state/<identity>/` for `resume`."""
    state.transcript_dir(identity).mkdir(parents=True, exist_ok=True, mode=0o700)
    backend.save_transcript(container_id, state.snapshot_file(identity))


def attach(
    identity: str,
    *,
    progress: Progress,
    consent: Consent = _refuse,
    registry: Registry = DEFAULT,
) -> Outcome:
    """Return to a running bottle wherever it runs; end it when its agent exits."""
    state.parse_identity(identity)
    host = host_of(identity, registry, progress)
    if host.per_session:
        raise BottleError(
            f"{identity} ran on a VM made for its session ({host.name}), gone with it",
            hint=f"`rbottle resume {identity}` starts it again on a new VM",
        )
    with open_engine(host, progress=progress, consent=consent, session=identity) as engine:
        client = engine.client
        backend = DockerBottleBackend(client, progress)
        containers = client.containers.list(
            all=True, filters={"label": [f"{IDENTITY}={identity}", f"{ROLE}={ROLE_AGENT}"]}
        )
        if not containers or containers[0].status != "running":
            raise BottleError(
                f"no running bottle {identity} on {host.name}",
                hint="`rbottle list` shows bottles; `rbottle resume` relaunches an ended one",
            )
        container = containers[0]
        check_containers(client, host.name, identity, _recorded_images(identity))
        _set_phase(identity, "running")
        end = attach_tty(client, str(container.id), redraw=True)
        if end.detached:
            _set_phase(identity, "detached")
        else:
            try:
                if state.has_state(identity):
                    _save(backend, str(container.id), state.read_metadata(identity))
            finally:
                backend.teardown(identity)
    return Outcome(identity, end.exit_code, end.detached)


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


def saved_transcript(identity: str) -> Path | None:
    """The whole snapshot the last session left; `memory.staged` splits it for a resume."""
    path = state.snapshot_file(identity)
    return path if path.is_file() else None
