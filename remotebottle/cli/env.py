"""`rbottle env`: a DOCKER_HOST for your own docker CLI, through the host's tunnel."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli.common import add_command, add_manifest_option, load_manifest, not_available
from remotebottle.hosts.resolve import resolve_host

DESCRIPTION = """\
Open the Docker tunnel to HOST and print the line to use it from your own shell:

  DOCKER_HOST=unix:///run/user/1000/rbottle/vm1/docker.sock

The tunnel stays up while this command runs; Ctrl-C closes it."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "env",
        help="print DOCKER_HOST for a host's tunnel",
        description=DESCRIPTION,
        epilog="example:\n  rbottle env vm1   # then, in another shell: "
        "export DOCKER_HOST=…; docker ps",
    )
    parser.add_argument("host", metavar="HOST", help="a hosts entry, ssh alias or ssh:// URL")
    add_manifest_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    resolve_host(args.host, load_manifest(args))
    not_available("env", "issue #5, remote hosts over SSH")
