"""`rbottle list`: the bottles this machine knows of, and where they run."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli.common import add_command, add_format_option, not_available

DESCRIPTION = """\
List bottles: identity, agent, host, age and status (running, exited, saved).
Bottles are found by their labels on each engine, never by name."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "list",
        help="list bottles and their status",
        description=DESCRIPTION,
        epilog="example:\n  rbottle list --format=json",
    )
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    not_available("list", "issue #4, the bottle on the local engine")
