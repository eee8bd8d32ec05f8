"""`rbottle list`: the bottles on a host's engines, and the ones this machine's state knows."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from remotebottle import state
from remotebottle.backend.base import BottleInfo
from remotebottle.backend.docker.backend import DockerBottleBackend
from remotebottle.errors import BottleError
from remotebottle.hosts import session_vm
from remotebottle.hosts.engine import join_session_vm, open_engine
from remotebottle.hosts.resolve import HostTarget

Progress = Callable[[str], None]


def _refuse(_question: str) -> bool:
    return False


@dataclass(frozen=True)
class Listed:
    identity: str
    agent: str
    host: str
    status: str
    started_at: str | None


def list_bottles(host: HostTarget, *, progress: Progress) -> list[Listed]:
    """Bottles on `host`'s engine, plus the ones this machine's state knows of.

    A bottle whose state says it runs on another host, and has not ended, is listed
    as `elsewhere`: only that host's engine can say more (`rbottle list --host`). A
    cloud host's engines are the VMs of its live sessions, reached through the tunnels
    those sessions published.
    """
    found: dict[str, Listed] = {}
    with contextlib.ExitStack() as stack:
        if host.is_cloud:  # its VMs are the ones this machine's live sessions made
            engines = [
                stack.enter_context(join_session_vm(host, identity))
                for identity in state.live_sessions().get(host.name, [])
                if session_vm.published(identity) is not None
            ]
        else:
            engines = [stack.enter_context(open_engine(host, progress=progress, consent=_refuse))]
        for engine in engines:
            for info in DockerBottleBackend(engine.client).list_active():
                found[info.identity] = _listed(info)
    for identity in state.known_identities():
        if identity in found:
            continue
        try:
            meta = state.read_metadata(identity)
        except BottleError:
            continue
        status = "saved" if meta.ended_at or meta.host == host.name else "elsewhere"
        found[identity] = Listed(identity, meta.agent, meta.host, status, meta.started_at)
    return sorted(found.values(), key=lambda b: b.started_at or "", reverse=True)


def _listed(info: BottleInfo) -> Listed:
    started = None
    if state.has_state(info.identity):
        started = state.read_metadata(info.identity).started_at
    return Listed(info.identity, info.agent, info.host, info.status, started or info.created)
