"""`rbottle cleanup`: remove what is labelled ours and no longer running."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli.common import add_command, not_available

DESCRIPTION = """\
Remove every container, network and volume labelled as remotebottle's that is
not running, after a y/N question. With --orphans, also cloud VMs, key pairs
and security groups tagged as ours whose session is gone or expired."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "cleanup",
        help="remove stopped bottles and leftovers",
        description=DESCRIPTION,
        epilog="examples:\n  rbottle cleanup --yes\n  rbottle cleanup --orphans",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do it without asking")
    parser.add_argument(
        "--orphans", action="store_true", help="also sweep cloud VMs and their keys/security groups"
    )
    parser.add_argument("--host", metavar="HOST", help="clean this host's engine instead")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.orphans:
        not_available("cleanup --orphans", "issue #7, ephemeral cloud VMs")
    not_available("cleanup", "issue #4, the bottle on the local engine")
