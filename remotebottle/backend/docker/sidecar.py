"""What a sidecar is given by the launching bottle, and what it grants the agent.

A sidecar module (egress, credential proxy, git gate) exposes
`start(site: SidecarSite) -> AgentGrant`: it creates and starts its containers on the
bottle's networks (labelled with the bottle's identity, so teardown finds them), puts
its secrets in the vault (tmpfs, never disk, env or argv), and returns what the agent
needs to use it: non-secret env, files for its home, hosts to reach without the proxy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.vault import Vault
from remotebottle.backend.spec import BottlePlan
from remotebottle.errors import EngineError

Progress = Callable[[str], None]
# Every container of a bottle starts from this: no capabilities, no privilege gain.
HARDENING: Mapping[str, Any] = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}


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
    """

    env: Mapping[str, str] = field(default_factory=dict)
    home_files: Mapping[str, bytes] = field(default_factory=dict)
    no_proxy: tuple[str, ...] = ()
    ca_certs: tuple[bytes, ...] = ()
    containers: tuple[str, ...] = ()

    def __or__(self, other: AgentGrant) -> AgentGrant:
        return AgentGrant(
            env={**self.env, **other.env},
            home_files={**self.home_files, **other.home_files},
            no_proxy=self.no_proxy + other.no_proxy,
            ca_certs=self.ca_certs + other.ca_certs,
            containers=self.containers + other.containers,
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
