"""`rbottle dashboard`: the operator's view of pending proposals."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING, Any

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_format_option,
    add_manifest_option,
    load_manifest,
)
from remotebottle.errors import UsageError

if TYPE_CHECKING:
    from remotebottle.supervise.model import ProposalSource

DESCRIPTION = """\
A terminal dashboard of what agents ask for beyond their manifest: egress hosts,
credential routes and image capabilities, from every active bottle on every
known host, oldest first. Approve (a), edit in $EDITOR then approve (e), or
reject with a reason (r); approved egress and route changes apply live,
capability changes via `rbottle resume`. `p` adds to a running bottle's
allowlist and `e` on the bottles table adds a route, with no proposal needed.

--once prints the pending proposals and exits: a table, or with --format=json
a list of proposal objects for scripts. Both check the hash chain of each listed
bottle's audit log and name the first bad entry of a broken one."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "dashboard",
        help="review and decide agents' proposals",
        description=DESCRIPTION,
        epilog="examples:\n  rbottle dashboard\n  rbottle dashboard --once --format=json",
    )
    parser.add_argument(
        "--once", action="store_true", help="print pending proposals and exit (for scripts)"
    )
    add_format_option(parser)
    add_manifest_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.format == "json" and not args.once:
        raise UsageError("--format=json prints proposals only with --once")
    if not args.once and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "the dashboard needs a terminal", hint="`rbottle dashboard --once` prints instead"
        )
    from remotebottle.supervise.source import open_sources

    with open_sources(load_manifest(args), progress=console.info, registry=args.registry) as source:
        return show(args, source)


def show(args: argparse.Namespace, source: ProposalSource) -> int:
    """Print the pending proposals (`--once`) or run the dashboard on `source`."""
    from rich.markup import escape
    from rich.table import Table

    from remotebottle.dashboard import render, sources
    from remotebottle.supervise import audit

    if not args.once:
        from remotebottle.dashboard.app import DashboardApp

        DashboardApp(source, operator=_operator()).run()
        return 0
    proposals = render.oldest_first(source.pending())
    if isinstance(source, sources.ReportsUnreachable):
        for host, why in sorted(source.unreachable.items()):
            console.warn(f"{host}: not reachable, its proposals are not listed: {why}")
    identities = {p.identity for p in proposals}
    if isinstance(source, sources.ListsBottles):
        identities |= {identity for identity, _ in source.bottles()}
    for problem in audit.broken_logs(identities).values():
        console.warn(problem)
    if args.format == "json":
        console.print_json([p.model_dump() for p in proposals])
        return 0
    if not proposals:
        console.info("no pending proposals")
        return 0
    table = Table("identity", "host", "kind", "summary", "age", "id")
    for proposal in proposals:
        table.add_row(*(escape(cell) for cell in render.row(proposal)))
    console.out.print(table)
    return 0


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
