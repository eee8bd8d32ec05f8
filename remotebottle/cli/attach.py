"""`rbottle attach`: return this terminal to a running bottle."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command, report_outcome
from remotebottle.cli.start import add_reconnect_option

DESCRIPTION = """\
Attach this terminal to the agent of a running bottle, after a detach (Ctrl-P
Ctrl-Q) or a dropped connection. The bottle keeps running while detached.

IDENTITY is what `rbottle start` printed, e.g. implementer-k3x9q; `rbottle list`
shows every bottle and where it runs. A bottle on a remote host is reached the
way it was started (same host, through a fresh SSH tunnel). A bottle on a VM made
for its session, whose `rbottle` was killed, is reached with the VM's address,
host key and login key recorded in the local state directory; that VM is
destroyed when the bottle ends, as the session would have destroyed it.

A bottle started without a terminal (`-p`, `-- CMD` from a script) shows all of
its output since it started, then ends with its exit status.

When the network to a remote host drops, attach says so once, keeps the bottle
running there, reconnects by itself with backoff and shows what the bottle
printed meanwhile, for up to --reconnect-limit seconds."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "attach",
        help="reattach to a running bottle",
        description=DESCRIPTION,
        epilog="example:\n  rbottle attach implementer-k3x9q",
    )
    parser.add_argument("identity", metavar="IDENTITY", help="the bottle's identity")
    add_reconnect_option(parser)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from remotebottle.ops.attach import attach

    outcome = attach(
        args.identity,
        progress=console.info,
        registry=args.registry,
        reconnect_limit=args.reconnect_limit,
    )
    return report_outcome(outcome)
