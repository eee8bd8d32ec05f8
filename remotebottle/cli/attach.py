"""`rbottle attach`: return this terminal to a running bottle."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command, report_outcome

DESCRIPTION = """\
Attach this terminal to the agent of a running bottle, after a detach (Ctrl-P
Ctrl-Q) or a dropped connection. The bottle keeps running while detached.

IDENTITY is what `rbottle start` printed, e.g. implementer-k3x9q; `rbottle list`
shows every bottle and where it runs. A bottle on a remote host is reached the
way it was started (same host, through a fresh SSH tunnel)."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "attach",
        help="reattach to a running bottle",
        description=DESCRIPTION,
        epilog="example:\n  rbottle attach implementer-k3x9q",
    )
    parser.add_argument("identity", metavar="IDENTITY", help="the bottle's identity")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from remotebottle.ops.session import attach

    return report_outcome(attach(args.identity, progress=console.info, registry=args.registry))
