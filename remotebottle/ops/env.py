"""`rbottle env`: a host's Docker tunnel, held open for your own docker CLI until stopped.

Ctrl-C, SIGTERM and SIGHUP all stop it the same way: the tunnel and the SSH connection
under it are closed and the socket removed on the way out.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from remotebottle.errors import ConnectError, UsageError
from remotebottle.hosts.engine import open_engine
from remotebottle.hosts.resolve import HostTarget
from remotebottle.transport.ssh import SshConnection

Progress = Callable[[str], None]
Consent = Callable[[str], bool]

# How often to check that the SSH connection under the tunnel is still alive.
CHECK_INTERVAL = 1.0


@dataclass(frozen=True)
class OpenTunnel:
    """A host's Docker engine at `docker_host` (a private unix socket), over `conn`."""

    host: str
    docker_host: str
    conn: SshConnection


@contextlib.contextmanager
def open_tunnel(host: HostTarget, *, progress: Progress, consent: Consent) -> Iterator[OpenTunnel]:
    """The Docker tunnel to `host` for the duration of the block (Docker installed on the
    host first if it is missing and `consent` says yes); SIGTERM and SIGHUP end the block
    as Ctrl-C does.

    Raises:
        UsageError: the host is local: there is nothing to tunnel.
        HostError: a cloud host (no standing machine), or the host cannot be reached.
    """
    if host.is_local:
        raise UsageError(
            "`local` is this machine's engine: there is nothing to tunnel",
            hint="use docker here as usual (with DOCKER_HOST unset), or name a remote host",
        )
    with (
        _stop_on_signals(),
        open_engine(host, progress=progress, consent=consent) as engine,
    ):
        if engine.remote is None:
            raise UsageError(f"{host.name} is not a remote engine: there is nothing to tunnel")
        yield OpenTunnel(host.name, engine.remote.tunnel.url, engine.remote.conn)


def hold_open(tunnel: OpenTunnel) -> None:
    """Wait while the tunnel's SSH connection lives; return when stopped (Ctrl-C, SIGTERM,
    SIGHUP inside `open_tunnel`).

    Raises:
        ConnectError: the SSH connection under the tunnel went away.
    """
    try:
        while tunnel.conn.is_active():
            time.sleep(CHECK_INTERVAL)
    except KeyboardInterrupt:
        return
    raise ConnectError(
        f"the SSH connection to {tunnel.host} was lost; the tunnel is closed",
        hint=f"run `rbottle env {tunnel.host}` again when the host is reachable",
    )


class _Stop(KeyboardInterrupt):
    """SIGTERM or SIGHUP: end as Ctrl-C does, closing the tunnel on the way out."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        # Once: a second signal must not interrupt the cleanup the first one started.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
