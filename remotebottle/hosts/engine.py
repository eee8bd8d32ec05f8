"""From a resolved `--host` to a Docker client: the local engine, or a VM's engine over SSH.

A remote engine is one SSH connection (strict host keys), Docker installed on the
host if it is missing (with consent), and a private Docker tunnel; the client on it
is handed to the backend, which never learns that it is remote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import docker
import docker.errors

from remotebottle.errors import EngineError, NotAvailableYet
from remotebottle.hosts.local import connect_local_engine
from remotebottle.hosts.resolve import HostTarget
from remotebottle.manifest import SshHost

if TYPE_CHECKING:  # the SSH modules import paramiko, which `rbottle --help` does not need
    from remotebottle.transport.docker_tunnel import DockerTunnel
    from remotebottle.transport.ssh import SshConnection

Progress = Callable[[str], None]
Consent = Callable[[str], bool]


@dataclass
class Engine:
    """A reachable engine; `remote` is set when it is a VM's engine through a tunnel."""

    host: HostTarget
    client: docker.DockerClient
    remote: RemoteLink | None = None

    @property
    def is_remote(self) -> bool:
        return self.remote is not None


@dataclass
class RemoteLink:
    """The one SSH connection to the host and the Docker tunnel over it."""

    conn: SshConnection
    tunnel: DockerTunnel


def ssh_entry(host: HostTarget) -> SshHost:
    """The SSH settings of a remote host.

    Raises:
        NotAvailableYet: the host is a cloud provider (created per session).
    """
    if isinstance(host.entry, SshHost):
        return host.entry
    raise NotAvailableYet(
        f"`--host {host.name}` ({host.provider}) is not available in this version yet: "
        "VMs created per session land with issue #7",
        hint="use an SSH host you own: --host ssh://user@host, or a hosts entry",
    )


def connect(host: HostTarget, *, progress: Progress) -> SshConnection:
    """One authenticated SSH connection to the host, host key checked strictly."""
    from remotebottle.transport.ssh import SshConnection

    progress(f"connecting to {host.name} over SSH")
    return SshConnection(ssh_entry(host), name=host.name).connect()


@contextlib.contextmanager
def open_engine(
    host: HostTarget,
    *,
    progress: Progress,
    consent: Consent,
    timeout: float = 600.0,
) -> Iterator[Engine]:
    """The engine `host` names, reachable for the duration of the block.

    For a remote host: connect, install Docker if missing (`consent` asked first),
    open the tunnel; all of it closed on the way out, whatever happens.
    """
    if host.is_local:
        client = connect_local_engine()
        try:
            yield Engine(host, client)
        finally:
            client.close()
        return
    with contextlib.ExitStack() as stack:
        link = stack.enter_context(_remote_link(host, progress=progress, consent=consent))
        client = link.tunnel.client(timeout=int(timeout))
        stack.callback(client.close)
        try:
            client.ping()
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(
                f"the Docker engine on {host.name} does not answer through the tunnel: {exc}",
                hint=f"check it on the host: `ssh {host.name} docker info`",
            ) from None
        yield Engine(host, client, link)


@contextlib.contextmanager
def _remote_link(host: HostTarget, *, progress: Progress, consent: Consent) -> Iterator[RemoteLink]:
    from remotebottle.hosts.provision import ensure_docker
    from remotebottle.transport.docker_tunnel import DockerTunnel

    entry = ssh_entry(host)
    conn = connect(host, progress=progress)
    try:
        if ensure_docker(
            conn, docker_socket=entry.docker_socket, consent=consent, progress=progress
        ):
            # Group membership (docker) is fixed at login: log in again to use it.
            conn.close()
            conn = connect(host, progress=progress)
        tunnel = DockerTunnel(conn, entry.docker_socket, name=host.name)
        try:
            yield RemoteLink(conn, tunnel)
        finally:
            tunnel.close()
    finally:
        conn.close()
