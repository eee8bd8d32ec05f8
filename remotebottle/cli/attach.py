"""`rbottle attach`: return this terminal to a running bottle."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli.common import add_command, not_available
from remotebottle.state import parse_identity

DESCRIPTION = """\
Attach this terminal to the agent of a running bottle, after a detach (Ctrl-P
Ctrl-Q) or a dropped connection. The bottle keeps running while detached.

IDENTITY is what `rbottle start` printed, e.g. implementer-k3x9q; `rbottle list`
shows every bottle and where it runs."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "attach",
        help="reattach to a running bottle",
        description=DESCRIPTION,
        epilog="example:\n  rbottle attach implementer-k3x9q",
    )
    parser.add_argument("identity", metavar="IDENTITY", help="the bottle's identity")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    parse_identity(args.identity)
    not_available("attach", "issue #5, the streamed session")
