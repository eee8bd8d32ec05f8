"""`rbottle cleanup`: remove what is labelled ours and no longer running."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle import run
from remotebottle.cli import console
from remotebottle.cli.common import add_command, confirm_or_stop, not_available

DESCRIPTION = """\
Remove every container, network and volume labelled as remotebottle's whose
bottle is not running, after a y/N question (--yes skips it). Running bottles
are left alone. Saved state (for `rbottle resume`) is kept.

With --orphans, also cloud VMs, key pairs and security groups tagged as ours
whose session is gone or expired."""


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
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.orphans:
        not_available("cleanup --orphans", "issue #7, ephemeral cloud VMs")
    backend, plan = run.prepare_cleanup()
    if plan.empty:
        console.info("nothing to clean up")
        return 0
    for line in plan.describe():
        console.info(f"  {line}")
    confirm_or_stop(f"Remove these {len(plan.describe())} objects?", args.yes)
    backend.cleanup(plan)
    console.info(f"removed {len(plan.describe())} objects")
    return 0
