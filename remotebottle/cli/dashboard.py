"""`rbottle dashboard`: the operator's view of pending proposals."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli.common import add_command, add_format_option, not_available

DESCRIPTION = """\
A terminal dashboard of what agents ask for beyond their manifest: egress hosts,
credential routes and image capabilities, from every active bottle on every
known host. Approve, edit then approve, or reject with a reason; approved
egress and route changes apply live, capability changes via `rbottle resume`."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "dashboard",
        help="review and decide agents' proposals",
        description=DESCRIPTION,
        epilog="example:\n  rbottle dashboard --once --format=json",
    )
    parser.add_argument(
        "--once", action="store_true", help="print pending proposals and exit (for scripts)"
    )
    add_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    not_available("dashboard", "issue #8, supervision")
