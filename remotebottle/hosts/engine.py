"""From a resolved `--host` to a Docker client: the local engine, or a VM's engine over SSH.

A remote engine is one SSH connection (strict host keys), Docker installed on the
host if it is missing (with consent), and a private Docker tunnel; the client on it
is handed to the backend, which never learns that it is remote.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import docker
import docker.errors

from remotebottle.errors import EngineError, HostError
from remotebottle.hosts.local import connect_local_engine
from remotebottle.hosts.provider import Machine
from remotebottle.hosts.resolve import HostTarget, ssh_endpoint
from remotebottle.manifest import SshHost
from remotebottle.transport.endpoint import SshEndpoint

if TYPE_CHECKING:  # the SSH modules import paramiko, which `rbottle --help` does not need
    from remotebottle.hosts.cloud import Heartbeat
    from remotebottle.transport.docker_tunnel import DockerTunnel
    from remotebottle.transport.ssh import SshConnection

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
Consent = Callable[[str], bool]

DOCKER_SOCKET = "/var/run/docker.sock"
# cloud-init installs Docker on VMs we make; where there is no cloud-init, nothing to wait for.
CLOUD_INIT_WAIT = (
    "if command -v cloud-init >/dev/null; then cloud-init status --wait; fi >/dev/null"
)


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
    """The one SSH connection to the host and the Docker tunnel over it; `machine` is the
    VM made for this session on a cloud host."""

    conn: SshConnection
    tunnel: DockerTunnel
    machine: Machine | None = None
    heartbeat: Heartbeat | None = None

    def reconnected(self) -> None:
        """`conn` is connected again after a cut: renew the VM's dead-man heartbeat now,
        not at its next interval (a cut may have swallowed a beat)."""
        if self.heartbeat is not None:
            self.heartbeat.renew_soon()


def ssh_entry(host: HostTarget) -> SshEndpoint:
    """What transport connects to for a host you own.

    Raises:
        HostError: the host is a cloud provider's (its VMs are made per session).
    """
    return ssh_endpoint(_owned(host))


def _owned(host: HostTarget) -> SshHost:
    """The entry of a host you own.

    Raises:
        HostError: the host is a cloud provider's (its VMs are made per session).
    """
    if isinstance(host.entry, SshHost):
        return host.entry
    raise HostError(
        f"{host.name} ({host.provider}) makes a new VM for each session: there is no"
        " standing machine to ask or connect to",
        hint="`rbottle cleanup --orphans` finds VMs left behind; start a session to get one",
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
    session: str | None = None,
    rejoin: bool = False,
) -> Iterator[Engine]:
    """The engine `host` names, reachable for the duration of the block; `session` is
    the session this process runs on it (claimed for the block: `session_vm.claim`).

    For a remote host: connect, install Docker if missing (`consent` asked first),
    open the tunnel; all of it closed on the way out, whatever happens. For a cloud
    host: first make the VM of `session` (destroyed on the way out unless reused), or
    with `rejoin`, take over the VM `session` made and recorded (`cloud.taken_over`).
    """
    from remotebottle.hosts import session_vm

    with contextlib.ExitStack() as stack:
        if session is not None:
            stack.enter_context(session_vm.claim(session))
        if host.is_local:
            client = connect_local_engine()  # a quick answer, or "no engine"
            client.api.timeout = int(timeout)  # then the same patience as a VM's engine
            stack.callback(client.close)
            yield Engine(host, client)
            return
        if host.is_cloud:
            if session is None:
                _owned(host)  # raises: no standing machine
            link = stack.enter_context(
                _cloud_link(host, session or "", progress=progress, rejoin=rejoin)
            )
        else:
            link = stack.enter_context(_remote_link(host, progress=progress, consent=consent))
        client = link.tunnel.client(timeout=int(timeout))
        stack.callback(client.close)
        _ping(client, host)
        yield Engine(host, client, link)


def _ping(client: docker.DockerClient, host: HostTarget, hint: str = "") -> None:
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        raise EngineError(
            f"the Docker engine on {host.name} does not answer through the tunnel: {exc}",
            hint=hint or f"check it on the host: `ssh {host.name} docker info`",
        ) from None


@contextlib.contextmanager
def _remote_link(host: HostTarget, *, progress: Progress, consent: Consent) -> Iterator[RemoteLink]:
    from remotebottle.hosts.provision import ensure_docker
    from remotebottle.transport.docker_tunnel import DockerTunnel

    docker_socket = _owned(host).docker_socket
    conn = connect(host, progress=progress)
    try:
        if ensure_docker(conn, docker_socket=docker_socket, consent=consent, progress=progress):
            # Group membership (docker) is fixed at login: log in again to use it.
            conn.close()
            conn = connect(host, progress=progress)
        tunnel = DockerTunnel(conn, docker_socket, name=host.name)
        try:
            yield RemoteLink(conn, tunnel)
        finally:
            tunnel.close()
    finally:
        conn.close()


@contextlib.contextmanager
def _cloud_link(
    host: HostTarget, session: str, *, progress: Progress, rejoin: bool = False
) -> Iterator[RemoteLink]:
    """The session's VM: made (or with `rejoin`, the one the session recorded), connected
    (provider-reported host key), heartbeat kept, Docker ready (cloud-init installs it; we
    wait for it), tunnel open and published for the dashboard (`session_vm`); destroyed
    after."""
    from remotebottle.hosts import session_vm
    from remotebottle.hosts.cloud import Heartbeat, connect_machine, session_machine, taken_over
    from remotebottle.hosts.provision import ensure_docker
    from remotebottle.hosts.session_vm import SessionVm
    from remotebottle.transport.docker_tunnel import DockerTunnel

    ready_timeout = float(getattr(host.entry, "ready_timeout", 300.0))
    acquire = taken_over if rejoin and host.per_session else session_machine
    with acquire(host, session, progress=progress) as (machine, provider):
        progress(f"connecting to {machine.address} over SSH")
        conn = connect_machine(machine, host.name, connect_timeout=30.0)
        try:
            # Docker and the heartbeat file are made during first boot: wait for it to end.
            progress("waiting for the VM's first boot to finish")
            code, _, err = conn.run(CLOUD_INIT_WAIT, timeout=ready_timeout)
            if code not in (0, 2):  # 2: finished with recoverable errors
                raise HostError(
                    f"the VM's first boot failed (cloud-init exit {code}):"
                    f" {err.decode(errors='replace').strip()[:200]}",
                    hint="see `cloud-init status --long` on the VM; it is destroyed now",
                )
            if ensure_docker(
                conn, docker_socket=DOCKER_SOCKET, consent=lambda _q: True, progress=progress
            ):
                conn.close()  # a new login, for the docker group
                conn = connect_machine(machine, host.name, connect_timeout=30.0)
            with Heartbeat(conn, on_beat=lambda: provider.renew_expiry(machine)) as heartbeat:
                tunnel = DockerTunnel(conn, DOCKER_SOCKET, name=host.name)
                try:
                    try:
                        session_vm.publish(session, SessionVm(machine.machine_id, tunnel.url))
                    except OSError as exc:  # only the dashboard needs it: go on without
                        log.warning("the dashboard will not see this VM: %s", exc)
                    yield RemoteLink(conn, tunnel, machine, heartbeat)
                finally:
                    session_vm.withdraw(session)
                    tunnel.close()
        finally:
            conn.close()


@contextlib.contextmanager
def join_session_vm(host: HostTarget, session: str) -> Iterator[Engine]:
    """The engine of the VM a session on cloud host `host` made, reached from another
    process (the dashboard, `list`): through the Docker tunnel the session published while
    its process lives, else through a tunnel of our own to the VM it recorded (no
    heartbeat: its dead-man timer still counts).

    Raises:
        HostError: the session has no VM now (it ended, or has none yet).
        ConnectError: its recorded VM does not answer.
        EngineError: the engine does not answer through the tunnel.
    """
    from remotebottle.hosts import session_vm

    vm = session_vm.published(session)
    if vm is None:
        raise HostError(f"session {session} on {host.name} has no VM now")
    with contextlib.ExitStack() as stack:
        if vm.docker_host:
            client = _tunnel_client(host, session, vm.docker_host)
        else:
            client = stack.enter_context(_recorded_vm_client(host, session))
        stack.callback(client.close)
        _ping(client, host, hint=f"is the `rbottle` session {session} still running?")
        yield Engine(host, client)


def _tunnel_client(host: HostTarget, session: str, url: str) -> docker.DockerClient:
    try:
        return docker.DockerClient(base_url=url, timeout=60)
    except docker.errors.DockerException as exc:  # it asks the engine's version at once
        raise EngineError(
            f"the Docker engine on {host.name} does not answer through the tunnel: {exc}",
            hint=f"is the `rbottle` session {session} still running?",
        ) from None


@contextlib.contextmanager
def _recorded_vm_client(host: HostTarget, session: str) -> Iterator[docker.DockerClient]:
    from remotebottle.hosts import session_vm
    from remotebottle.hosts.cloud import connect_machine
    from remotebottle.transport.docker_tunnel import DockerTunnel

    machine = session_vm.recorded(session)
    if machine is None:
        raise HostError(f"session {session} on {host.name} has no VM now")
    with connect_machine(machine, host.name, connect_timeout=10.0) as conn:
        tunnel = DockerTunnel(conn, DOCKER_SOCKET, name=host.name)
        try:
            yield tunnel.client(timeout=60)
        finally:
            tunnel.close()
