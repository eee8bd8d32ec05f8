"""`rbottle list`: the bottles this machine knows of, and where they run."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_format_option,
    add_host_option,
    add_manifest_option,
    load_manifest,
)

DESCRIPTION = """\
List bottles: identity, agent, host, age and status. `running` and `exited`
come from the engine (found by label, never by name); `saved` means the bottle
has ended and `rbottle resume IDENTITY` can relaunch it.

Without --host, the local engine and every host this machine's live sessions
run on are asked (each as its session recorded it, through a short-lived SSH
tunnel; a cloud host's VMs through the tunnel their session keeps). With
--host HOST, only that host; bottles elsewhere show as `elsewhere`. A bottle
whose host did not answer shows as `unreachable`; one whose engine answered
without it as `gone` (its session was killed: `rbottle cleanup --orphans`)."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "list",
        help="list bottles and their status",
        description=DESCRIPTION,
        epilog="examples:\n  rbottle list --format=json\n  rbottle list --host vm1",
    )
    add_host_option(
        parser, "ask only this host's engine (default: every engine with live sessions)"
    )
    add_format_option(parser)
    add_manifest_option(parser)
    parser.set_defaults(func=run_command)


def age(started_at: str | None) -> str:
    if not started_at:
        return "?"
    try:
        started = datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = int((datetime.now(UTC) - started).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def run_command(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from remotebottle.hosts.resolve import resolve_host
    from remotebottle.ops.listing import list_bottles

    manifest = load_manifest(args)
    only = resolve_host(args.host, manifest, args.registry) if args.host else None
    bottles = list_bottles(manifest, only, progress=console.info, registry=args.registry)
    if args.format == "json":
        console.print_json([{**asdict(b), "age": age(b.started_at)} for b in bottles])
        return 0
    if not bottles:
        console.info("no bottles")
        return 0
    table = Table("identity", "agent", "host", "age", "status")
    for b in bottles:
        table.add_row(
            escape(b.identity), escape(b.agent), escape(b.host), age(b.started_at), b.status
        )
    console.out.print(table)
    return 0
