"""What a sidecar is given by the launching bottle, and what it grants the agent.

A sidecar module (egress, credential proxy, git gate) exposes
`start(site: SidecarSite) -> AgentGrant`: it creates and starts its containers on the
bottle's networks (labelled with the bottle's identity, so teardown finds them), puts
its secrets in the vault (tmpfs, never disk, env or argv), and returns what the agent
needs to use it: non-secret env, files for its home, hosts to reach without the proxy.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.vault import Vault
from remotebottle.backend.spec import BottlePlan
from remotebottle.errors import BottleError, EngineError

Progress = Callable[[str], None]
# Every container of a bottle starts from this: no capabilities, no privilege gain.
HARDENING: Mapping[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}
# How long a sidecar has to come up once started.
READY_TIMEOUT = 30.0
_UP = ("created", "running")


@dataclass(frozen=True)
class SidecarSite:
    """The bottle being launched, as a sidecar sees it.

    Attributes:
        client: the engine (local, or a VM's through the tunnel).
        plan: the bottle's plan (spec with resolved secrets, images, runtime).
        vault: the bottle's opened tmpfs vault.
        internal: the agent's `--internal` network (docker-py Network).
        outside: a network with a route out, or None when the bottle has none.
        agent_image: the agent image ref (sidecars may run on it).
        runtime: container kwargs for the runtime (`{"runtime": "runsc"}` or `{}`).
        progress: one-line progress reports.
    """

    client: docker.DockerClient
    plan: BottlePlan
    vault: Vault
    internal: Any
    outside: Any | None
    agent_image: str
    runtime: Mapping[str, Any]
    progress: Progress


@dataclass(frozen=True)
class AgentGrant:
    """What a sidecar gives the agent; nothing in it is secret.

    Attributes:
        env: environment for the agent's processes.
        home_files: files to put under the agent's home, by relative path.
        no_proxy: host names the agent reaches directly on the internal network.
        ca_certs: PEM certificates the agent must trust.
        containers: ids of the sidecar's containers.
        ready: waits until the sidecar serves (`later_ready`), owed before the agent's
            command may run: the backend awaits them all once the agent is set up, so
            the sidecars get ready while the agent is made.
    """

    env: Mapping[str, str] = field(default_factory=dict)
    home_files: Mapping[str, bytes] = field(default_factory=dict)
    no_proxy: tuple[str, ...] = ()
    ca_certs: tuple[bytes, ...] = ()
    containers: tuple[str, ...] = ()
    ready: tuple[Callable[[], None], ...] = ()

    def __or__(self, other: AgentGrant) -> AgentGrant:
        return AgentGrant(
            env={**self.env, **other.env},
            home_files={**self.home_files, **other.home_files},
            no_proxy=self.no_proxy + other.no_proxy,
            ca_certs=self.ca_certs + other.ca_certs,
            containers=self.containers + other.containers,
            ready=self.ready + other.ready,
        )


def start_container(
    site: SidecarSite,
    image: str,
    command: list[str],
    *,
    role: str,
    alias: str | None,
    outside_aliases: list[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Create a hardened sidecar container of the bottle on its outside network (named
    `outside_aliases` there), join it to the internal network as `alias` (unless None: the
    agent cannot reach it then), and start it. `kwargs` go to `containers.create`."""
    spec = site.plan.spec
    assert site.outside is not None
    if outside_aliases:
        endpoint = site.client.api.create_endpoint_config(aliases=outside_aliases)
        kwargs["networking_config"] = {site.outside.id: endpoint}
    try:
        container = site.client.containers.create(
            image,
            command,
            name=f"rb-{spec.identity}-{role}",
            labels=L.labels(spec.identity, spec.agent, role, spec.host),
            network=site.outside.id,
            read_only=True,
            **site.runtime,
            **HARDENING,
            **kwargs,
        )
        if alias is not None:
            site.internal.connect(container, aliases=[alias])
        container.start()
    except docker.errors.DockerException as exc:
        raise EngineError(f"could not start the bottle's {role}: {exc}") from None
    return container


def address_on(container: Any, network: Any) -> str:
    """The container's IPv4 address on `network` (both docker-py objects)."""
    try:
        container.reload()
        return str(container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"])
    except (docker.errors.DockerException, KeyError) as exc:
        raise EngineError(f"could not read the address of {container.name}: {exc}") from None


def internal_subnet(site: SidecarSite) -> str:
    """The agent's network, the only one a sidecar serving the agent should answer on."""
    try:
        site.internal.reload()
        return str(site.internal.attrs["IPAM"]["Config"][0]["Subnet"])
    except (docker.errors.DockerException, KeyError, IndexError) as exc:
        raise EngineError(f"could not read the bottle's network: {exc}") from None


def logged(marker: str) -> Callable[[Any], bool]:
    """Ready once the container's log holds `marker` (a server's "listening" event)."""
    return lambda container: marker in container.logs().decode(errors="replace")


def answers(command: list[str]) -> Callable[[Any], bool]:
    """Ready once `command`, run in the container, exits 0 (a health check)."""
    return lambda container: container.exec_run(command).exit_code == 0


def wait_ready(container: Any, what: str, ready: Callable[[Any], bool], hint: str = "") -> None:
    """Wait until the started sidecar `container` (`what`: "the git gate") is `ready`.

    Raises:
        BottleError: it stopped, or was not ready within READY_TIMEOUT; the message gives its
            state and the last lines of its log.
        EngineError: the engine did not answer.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while True:
            container.reload()
            if container.status not in _UP:
                raise _stopped(container, what, hint)
            if container.status == "running" and ready(container):
                return
            if time.monotonic() >= deadline:
                raise BottleError(
                    f"{what} did not start in {READY_TIMEOUT:.0f}s: {_state(container)}", hint=hint
                )
            time.sleep(0.1)
    except docker.errors.DockerException as exc:
        # A check run in a container that has just stopped fails: its stopping is the news.
        with contextlib.suppress(docker.errors.DockerException):
            container.reload()
            if container.status not in _UP:
                raise _stopped(container, what, hint) from None
        raise EngineError(f"could not check on {what}: {exc}") from None


def later_ready(
    container: Any, what: str, ready: Callable[[Any], bool], hint: str = ""
) -> Callable[[], None]:
    """`wait_ready`, to be called later (`AgentGrant.ready`)."""
    return lambda: wait_ready(container, what, ready, hint)


def _stopped(container: Any, what: str, hint: str) -> BottleError:
    return BottleError(f"{what} stopped: {_state(container)}", hint=hint)


def _state(container: Any) -> str:
    """The container's status (and exit code once it ended) and its last log lines, on one
    line."""
    state = container.attrs.get("State") or {}
    status = str(state.get("Status") or container.status)
    if status in ("exited", "dead"):
        status += f" (exit {state.get('ExitCode', '?')})"
    lines = container.logs(tail=10).decode(errors="replace").splitlines()
    log = " | ".join(line.strip() for line in lines if line.strip())
    return f"{status}; log: {log[-300:] or '(empty)'}"
