"""A session: start (and resume) a bottle, stream it, end it; attach to one left running.

It joins the plan (`ops.plan`), the engine (local, or a VM's through the SSH tunnel),
the images (`ops.images`), the backend, the terminal (`ops.stream`) and the session
record in the state directory. The backend itself stays unaware of hosts.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from remotebottle import state
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.docker.refusals import refusals
from remotebottle.backend.spec import BottlePlan
from remotebottle.errors import BottleError, RemoteBottleError
from remotebottle.hosts.engine import Consent, open_engine
from remotebottle.hosts.resolve import HostTarget
from remotebottle.image_pins import check_containers
from remotebottle.ops import checkpoint
from remotebottle.ops.checkpoint import Checkpoints, last_copy
from remotebottle.ops.engine_wait import BottleLost
from remotebottle.ops.images import place_images
from remotebottle.ops.link import LinkGone, stay_attached
from remotebottle.ops.plan import StartPlan, StartRequest, check_engine
from remotebottle.ops.ship import ShipProgress
from remotebottle.supervise import audit, capability
from remotebottle.timing import phase

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    identity: str
    exit_code: int | None
    detached: bool = False


def refuse(_question: str) -> bool:
    return False


def wants_tty(plan: BottlePlan) -> bool:
    """Interactive claude always gets a TTY; -p and `-- CMD` only when we have one."""
    if plan.spec.command.mode == "interactive":
        return True
    return sys.stdin.isatty() and sys.stdout.isatty()


def start(
    request: StartRequest,
    preview: StartPlan,
    *,
    progress: Progress,
    consent: Consent = refuse,
    manifest_file: Path | None = None,
    transcript: Path | None = None,
    on_ship: Callable[[ShipProgress], None] | None = None,
) -> Outcome:
    """Launch the plan the user confirmed, stream the session, end it cleanly.

    The previewed spec gets its values now (prompts are asked here), and is not rebuilt
    from the manifest. `consent` is asked before changing a host (installing Docker on
    it). `transcript` is a tar of ~/.claude/projects to restore (resume: see
    `memory.staged`).
    """
    spec = preview.bottle.spec.with_values()
    with contextlib.ExitStack() as stack:
        with phase("engine"):
            engine = stack.enter_context(
                open_engine(preview.host, progress=progress, consent=consent, session=spec.identity)
            )
        backend = DockerBottleBackend(engine.client, progress)
        with phase("plan"):
            facts = backend.engine_facts()
            check_engine(preview.host, facts, allowed=request.allow_old_engine, progress=progress)
            plan = backend.settle(replace(preview.bottle, spec=spec), facts)
        if plan.spec.command.mode == "interactive" and not sys.stdin.isatty():
            raise BottleError(
                "an interactive session needs a terminal",
                hint="use -p PROMPT or `-- CMD` from scripts",
            )
        image_lines = capability.read(spec.identity)
        with phase("place images"):
            placed = place_images(
                engine,
                plan,
                progress=progress,
                on_ship=on_ship,
                image_lines=image_lines,
                recorded=recorded_images(spec.identity),
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
            copies: Checkpoints | None = None
            try:
                with (
                    phase("session"),
                    checkpoint.kept(engine, bottle.agent_container, spec.identity) as copies,
                ):
                    end = stay_attached(
                        engine,
                        bottle.agent_container,
                        tty=tty,
                        progress=progress,
                        on_attached=lambda: backend.release(bottle),
                        limit=request.reconnect_limit,
                    )
            except LinkGone as exc:
                bottle.keep = True  # nothing reaches it now; it is there to attach to
                raise gone(exc, preview.host, spec.identity, copies) from None
            except BottleLost as exc:
                bottle.keep = not exc.engine_back  # with no engine, nothing can remove it
                raise lost(
                    exc,
                    preview.host,
                    backend,
                    bottle.agent_container,
                    spec.identity,
                    copies,
                    progress,
                ) from None
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
                with phase("save transcript"):
                    save(backend, bottle.agent_container, meta)
    return Outcome(spec.identity, end.exit_code, end.detached)


def gone(exc: LinkGone, host: HostTarget, identity: str, copies: Checkpoints | None) -> BottleError:
    """The error for a host that stayed away too long, with the session's record set to
    where the bottle is now (left running on a host you own; gone with a VM made for it)."""
    since = last_copy(copies)
    if host.per_session:
        return _gone_with_its_vm(exc.message, identity, since)
    _record_phase(identity, "detached")
    return BottleError(
        exc.message,
        hint=f"the bottle keeps running on {host.name}: rbottle attach {identity} (or, if"
        f" the VM is gone for good, rbottle resume {identity}{since})",
    )


def lost(
    exc: BottleLost,
    host: HostTarget,
    backend: DockerBottleBackend,
    container_id: str,
    identity: str,
    copies: Checkpoints | None,
    progress: Progress,
) -> BottleError:
    """The error for a bottle its engine lost while the host answered, once what is left
    of it is kept: its transcript from its stopped container, or else the last copy
    taken during the session (`checkpoint`)."""
    since = last_copy(copies)
    if not exc.engine_back:
        if host.per_session:
            return _gone_with_its_vm(exc.message, identity, since)
        _record_phase(identity, "detached")
        return BottleError(
            exc.message,
            hint=f"see `ssh {host.name} docker info`; once the engine answers: rbottle attach"
            f" {identity} if the bottle still runs, else rbottle resume {identity}",
        )
    if exc.container_left and state.has_state(identity):
        try:
            if save(backend, container_id, state.read_metadata(identity)):
                since = " from its transcript, saved now"
        except RemoteBottleError as err:
            progress(f"warning: {err.message}")
    _record_end(identity)
    return BottleError(exc.message, hint=f"rbottle resume {identity} starts it again{since}")


def _gone_with_its_vm(message: str, identity: str, since: str) -> BottleError:
    """The session's record ended: the VM made for it goes with the session."""
    _record_end(identity)
    return BottleError(
        message,
        hint=f"the VM made for the session is destroyed now; `rbottle resume {identity}`"
        f" starts the bottle again{since}",
    )


def _record_phase(identity: str, phase: str) -> None:
    if state.has_state(identity):
        state.write_metadata(replace(state.read_metadata(identity), phase=phase))


def _record_end(identity: str) -> None:
    if state.has_state(identity):
        meta = state.read_metadata(identity)
        state.write_metadata(replace(meta, ended_at=meta.ended_at or state.now(), phase="ended"))


def recorded_images(identity: str) -> dict[str, str]:
    """The image IDs an earlier session of `identity` ran (resume), if any."""
    if not state.has_state(identity):
        return {}
    return state.read_metadata(identity).images or {}


def save(backend: DockerBottleBackend, container_id: str, meta: state.Metadata) -> bool:
    """Keep the transcript and what the proxies refused, and mark the session ended,
    before the bottle goes; whether a transcript was found to keep. (Under gVisor the
    engine cannot see the agent's files: the copies taken during the session stay.)"""
    try:
        audit.record_refusals(meta.identity, refusals(backend.client, meta.identity))
        return save_transcript(backend, container_id, meta.identity)
    finally:
        state.write_metadata(replace(meta, ended_at=state.now(), phase="ended"))


def save_transcript(backend: DockerBottleBackend, container_id: str, identity: str) -> bool:
    """Snapshot the agent's ~/.claude/projects into `state/<identity>/` for `resume`,
    where the engine sees the agent's files (else a stale view would replace the copies
    taken during the session: `checkpoint`)."""
    if not checkpoint.engine_sees_files(backend.client, container_id):
        return False
    state.transcript_dir(identity).mkdir(parents=True, exist_ok=True, mode=0o700)
    return backend.save_transcript(container_id, state.snapshot_file(identity))


def saved_transcript(identity: str) -> Path | None:
    """The whole snapshot the last session left; `memory.staged` splits it for a resume."""
    path = state.snapshot_file(identity)
    return path if path.is_file() else None
