"""Finding what is ours on an engine by its labels, and removing it.

A bottle's containers, networks and volumes all carry its identity label, so teardown
finds a half-made bottle as well as a whole one; `leftovers` is what `rbottle cleanup`
may remove: every labelled object of a bottle that is neither running nor launching.
"""

from __future__ import annotations

import contextlib
import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import docker
import docker.errors

from remotebottle.backend.base import BottleInfo, CleanupPlan
from remotebottle.backend.docker import labels as L
from remotebottle.errors import EngineError, TeardownError

# How long an interrupted launch keeps sweeping for objects whose create was still in flight.
_SETTLE_SECONDS = 4.0
# A bottle still launching (images building, sidecars up, agent not yet started) is left
# alone by cleanup for this long.
LAUNCH_GRACE_SECONDS = 15 * 60
# Containers removed at once (docker-py's connection pool holds 10).
_PARALLEL = 8


def teardown(client: docker.DockerClient, identity: str, *, settle: bool = False) -> None:
    """Remove every container, network and volume labelled with `identity`.

    `settle` is for a launch interrupted mid-way: a create request the client gave up on
    may still complete in the engine after the first sweep, so sweep until it stays empty.

    Raises:
        TeardownError: something could not be removed; the message lists what.
    """
    leaked = remove(client, _collect(client, identity, running_too=True))
    deadline = time.monotonic() + _SETTLE_SECONDS
    while settle and time.monotonic() < deadline:
        # A container created late keeps its volume or network busy: sweep again.
        time.sleep(0.25)
        found = _collect(client, identity, running_too=True)
        if leaked or not found.empty:
            leaked = remove(client, found)
    if leaked:
        raise TeardownError(
            f"could not remove {', '.join(leaked)}",
            hint="retry with `rbottle cleanup --yes`",
        )


def list_active(client: docker.DockerClient) -> list[BottleInfo]:
    """Every bottle on the engine, running or not, by its agent container."""
    return [
        BottleInfo(
            identity=c.labels.get(L.IDENTITY, "?"),
            agent=c.labels.get(L.AGENT, "?"),
            host=c.labels.get(L.HOST, "local"),
            status=c.status,
            created=str(c.attrs.get("Created", "")),
            containers=(str(c.id),),
        )
        for c in L.find(client, role=L.ROLE_AGENT)
    ]


def leftovers(client: docker.DockerClient) -> CleanupPlan:
    """Everything labelled ours but of a bottle that is neither running nor launching."""
    return _collect(client, None, running_too=False)


def remove(client: docker.DockerClient, plan: CleanupPlan) -> list[str]:
    """Remove what `plan` names (gone already is fine); what could not be removed, by name."""
    leaked: list[str] = []

    def remove_container(cid: str, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            try:
                client.api.remove_container(cid, force=True, v=True)
            except docker.errors.DockerException:
                leaked.append(f"container {name}")

    # The engine stops and removes containers one request at a time; asked together, it
    # does them side by side (a bottle's teardown is what a user waits for at its end).
    with ThreadPoolExecutor(max_workers=_PARALLEL, thread_name_prefix="rbottle-rm") as pool:
        list(pool.map(lambda found: remove_container(*found), plan.containers))
    for nid, name in plan.networks:
        with contextlib.suppress(docker.errors.NotFound):
            try:
                # Whatever else was attached (a debugging container, say) must not pin it.
                for endpoint in client.api.inspect_network(nid).get("Containers") or {}:
                    with contextlib.suppress(docker.errors.APIError):
                        client.api.disconnect_container_from_network(endpoint, nid, force=True)
                client.api.remove_network(nid)
            except docker.errors.DockerException:
                leaked.append(f"network {name}")
    for vid, name in plan.volumes:
        with contextlib.suppress(docker.errors.NotFound):
            try:
                client.api.remove_volume(vid, force=True)
            except docker.errors.DockerException:
                leaked.append(f"volume {name}")
    return leaked


def _collect(
    client: docker.DockerClient, identity: str | None, *, running_too: bool
) -> CleanupPlan:
    filters = L.owned_filter(identity)
    try:
        containers = client.containers.list(all=True, filters=filters)
        networks = client.networks.list(filters=filters)
        volumes = client.volumes.list(filters=filters)
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not list bottles: {exc}") from None
    if not running_too:
        busy = _busy_identities(containers)
        containers = [c for c in containers if c.labels.get(L.IDENTITY) not in busy]
        networks = [n for n in networks if n.attrs["Labels"].get(L.IDENTITY) not in busy]
        volumes = [v for v in volumes if (v.attrs.get("Labels") or {}).get(L.IDENTITY) not in busy]
    return CleanupPlan(
        containers=tuple((str(c.id), str(c.name)) for c in containers),
        networks=tuple((str(n.id), str(n.name)) for n in networks),
        volumes=tuple((str(v.id), str(v.name)) for v in volumes),
    )


def _busy_identities(containers: list[Any]) -> set[str]:
    """Bottles cleanup must not touch: the agent runs, or the bottle is still launching
    (no agent that has ended, and a container of it started less than the grace ago)."""
    groups: dict[str, list[Any]] = {}
    for c in containers:
        groups.setdefault(c.labels.get(L.IDENTITY, ""), []).append(c)
    busy = set()
    for identity, group in groups.items():
        agents = [c for c in group if c.labels.get(L.ROLE) == L.ROLE_AGENT]
        running = any(a.status == "running" for a in agents)
        ended = any(a.status in ("exited", "dead") for a in agents)
        launching = not ended and any(
            c.status == "running" and _age_seconds(c) < LAUNCH_GRACE_SECONDS for c in group
        )
        if running or launching:
            busy.add(identity)
    return busy


def _age_seconds(container: Any) -> float:
    created = str(container.attrs.get("Created", ""))[:19]
    try:
        started = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return 0.0
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return (now - started).total_seconds()
