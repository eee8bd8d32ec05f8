"""`rbottle cleanup`: remove what is labelled ours and no longer running."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle import run
from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_host_option,
    add_manifest_option,
    confirm_or_stop,
    load_manifest,
    not_available,
)
from remotebottle.hosts.resolve import resolve_host

DESCRIPTION = """\
Remove every container, network and volume labelled as remotebottle's whose
bottle is not running, after a y/N question (--yes skips it). Running bottles
are left alone. Saved state (for `rbottle resume`) is kept.

Without --host this is the local engine; --host HOST cleans that host's engine
(what an interrupted session on a VM may have left there).

With --orphans, also cloud VMs, key pairs and security groups tagged as ours
whose session is gone or expired."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "cleanup",
        help="remove stopped bottles and leftovers",
        description=DESCRIPTION,
        epilog=(
            "examples:\n  rbottle cleanup --yes\n  rbottle cleanup --host vm1"
            "\n  rbottle cleanup --orphans"
        ),
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do it without asking")
    parser.add_argument(
        "--orphans", action="store_true", help="also sweep cloud VMs and their keys/security groups"
    )
    add_host_option(parser, "the host whose engine to clean (default: the local engine)")
    add_manifest_option(parser)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.orphans:
        not_available("cleanup --orphans", "issue #7, ephemeral cloud VMs")
    host = resolve_host(args.host, load_manifest(args))
    with run.cleanup_on(host, progress=console.info) as found:
        plan = found.plan
        if plan.empty:
            console.info(f"nothing to clean up on {host.name}")
            return 0
        for line in plan.describe():
            console.info(f"  {line}")
        confirm_or_stop(f"Remove these {len(plan.describe())} objects?", args.yes)
        found.backend.cleanup(plan)
    console.info(f"removed {len(plan.describe())} objects from {host.name}")
    return 0
