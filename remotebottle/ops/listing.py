"""`rbottle list`: the bottles on the engines of live sessions, and the ones this machine's
state knows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from remotebottle import state
from remotebottle.backend.base import BottleInfo
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.errors import BottleError
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.hosts.resolve import HostTarget
from remotebottle.manifest import Manifest
from remotebottle.ops.engines import live_engines

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Listed:
    identity: str
    agent: str
    host: str
    status: str
    started_at: str | None


def list_bottles(
    manifest: Manifest,
    host: HostTarget | None,
    *,
    progress: Progress,
    registry: Registry = DEFAULT,
) -> list[Listed]:
    """Bottles on every engine with live sessions (or just `host`'s), plus the ones this
    machine's state knows of.

    A bottle found on no engine asked shows its session record's phase: `saved` once it
    has ended, else `unreachable` when its host did not answer, or `elsewhere` when its
    host was not asked (`--host` names another one), or `gone` when its engine answered
    without it (its session was killed: `rbottle cleanup --orphans`).
    """
    found: dict[str, Listed] = {}
    with live_engines(manifest, progress=progress, registry=registry, only=host) as live:
        if live.unreachable and not live.engines:
            raise next(iter(live.unreachable.values()))
        for name, exc in live.unreachable.items():
            progress(f"warning: {name} did not answer: {exc.message}")
        for engine in live.engines.values():
            for info in DockerBottleBackend(engine).list_active():
                found[info.identity] = _listed(info)
        asked = {name.split("/")[0] for name in live.engines}
        down = {name.split(" (")[0] for name in live.unreachable}
    for identity in state.known_identities():
        if identity in found:
            continue
        try:
            meta = state.read_metadata(identity)
        except BottleError:
            continue
        found[identity] = Listed(
            identity, meta.agent, meta.host, _recorded_status(meta, asked, down), meta.started_at
        )
    return sorted(found.values(), key=lambda b: b.started_at or "", reverse=True)


def _recorded_status(meta: state.Metadata, asked: set[str], down: set[str]) -> str:
    if meta.ended_at:
        return "saved"
    if meta.host in down:
        return "unreachable"
    if meta.host not in asked:
        return "elsewhere"
    return "gone"


def _listed(info: BottleInfo) -> Listed:
    started = None
    if state.has_state(info.identity):
        started = state.read_metadata(info.identity).started_at
    return Listed(info.identity, info.agent, info.host, info.status, started or info.created)
