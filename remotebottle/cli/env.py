"""`rbottle env`: a DOCKER_HOST for your own docker CLI, through the host's tunnel."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command, add_manifest_option, load_manifest

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
    from remotebottle.hosts.resolve import resolve_host
    from remotebottle.ops.env import hold_open, open_tunnel

    host = resolve_host(args.host, load_manifest(args), args.registry)
    with open_tunnel(
        host,
        progress=console.info,
        consent=lambda question: args.yes or console.confirm(question),
    ) as tunnel:
        sys.stdout.write(f"export DOCKER_HOST={shlex.quote(tunnel.docker_host)}\n")
        sys.stdout.flush()
        console.info(
            f"tunnel to {tunnel.host}'s Docker Engine open; use it from another shell with the"
            " line above. Ctrl-C closes it."
        )
        hold_open(tunnel)
        console.info(f"closing the tunnel to {tunnel.host}")
    return 0
