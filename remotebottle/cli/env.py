"""`rbottle env`: a DOCKER_HOST for your own docker CLI, through the host's tunnel."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command, add_manifest_option, load_manifest
from remotebottle.errors import ConnectError, UsageError

if TYPE_CHECKING:
    from remotebottle.hosts.engine import Engine

DESCRIPTION = """\
Open the Docker tunnel to HOST and print the line that points your own docker
CLI (or any Docker SDK) at it, on stdout:

  export DOCKER_HOST=unix:///run/user/1000/rbottle/vm1.k2x8f1/docker.sock

The tunnel is a private unix socket (mode 0600, in a 0700 directory) carried by
one SSH connection; the host key must be trusted first (`rbottle hosts trust`).
It stays up while this command runs; Ctrl-C (or SIGTERM/SIGHUP) closes it and
removes the socket. If Docker Engine is missing on the host, rbottle offers to
install it (y/N; --yes to allow it without asking)."""

EPILOG = """\
examples:
  rbottle env vm1                  # leave it running; in another shell:
  export DOCKER_HOST=unix://…      # the line it printed
  docker ps

  rbottle env vm1 > vm1.env &      # in the background: `. vm1.env`, later `kill %1`"""

# How often to check that the SSH connection under the tunnel is still alive.
_CHECK_INTERVAL = 1.0


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "env",
        help="print DOCKER_HOST for a host's tunnel",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument("host", metavar="HOST", help="a hosts entry, ssh alias or ssh:// URL")
    parser.add_argument(
        "-y", "--yes", action="store_true", help="install Docker Engine on HOST without asking"
    )
    add_manifest_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from remotebottle.hosts.engine import open_engine
    from remotebottle.hosts.resolve import resolve_host

    host = resolve_host(args.host, load_manifest(args), args.registry)
    if host.is_local:
        raise UsageError(
            "`local` is this machine's engine: there is nothing to tunnel",
            hint="use docker here as usual (with DOCKER_HOST unset), or name a remote host",
        )
    with (
        _stop_on_signals(),
        open_engine(
            host,
            progress=console.info,
            consent=lambda question: args.yes or console.confirm(question),
        ) as engine,
    ):
        return serve(engine)


def serve(engine: Engine) -> int:
    """Print DOCKER_HOST, then hold the tunnel open until a signal or a lost connection.

    Raises:
        ConnectError: the SSH connection under the tunnel went away.
    """
    name = engine.host.name
    if engine.remote is None:
        raise UsageError(f"{name} is not a remote engine: there is nothing to tunnel")
    tunnel, conn = engine.remote.tunnel, engine.remote.conn
    sys.stdout.write(f"export DOCKER_HOST={shlex.quote(tunnel.url)}\n")
    sys.stdout.flush()
    console.info(
        f"tunnel to {name}'s Docker Engine open; use it from another shell with the line"
        " above. Ctrl-C closes it."
    )
    try:
        while conn.is_active():
            time.sleep(_CHECK_INTERVAL)
    except KeyboardInterrupt:
        console.info(f"closing the tunnel to {name}")
        return 0
    raise ConnectError(
        f"the SSH connection to {name} was lost; the tunnel is closed",
        hint=f"run `rbottle env {name}` again when the host is reachable",
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
