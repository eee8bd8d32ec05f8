"""`rbottle hosts`: the hosts the manifest knows, and `hosts trust` for their keys."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_format_option,
    add_manifest_option,
    load_manifest,
    not_available,
)
from remotebottle.hosts.resolve import HostEntry, resolve_host

DESCRIPTION = """\
List the hosts defined in claude-bottle.json (plus `local`, always there).

  rbottle hosts trust HOST   show HOST's SSH key fingerprint and record it in
                             ~/.ssh/known_hosts after you confirm it

Any ~/.ssh/config alias or ssh://user@host[:port] also works as --host without
an entry; an entry adds settings (image shipping, timeouts, cloud options)."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "hosts",
        help="list hosts; trust a host's SSH key",
        description=DESCRIPTION,
        epilog="examples:\n  rbottle hosts\n  rbottle hosts trust vm1",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "trust"),
        default="list",
        help="list (default) or trust",
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="the host, for trust")
    add_format_option(parser)
    add_manifest_option(parser)
    parser.set_defaults(func=run)


def describe(entry: HostEntry) -> str:
    if entry.provider == "ssh":
        user = f"{entry.user}@" if entry.user else ""
        port = f":{entry.port}" if entry.port else ""
        return f"{user}{entry.address}{port}"
    if entry.provider == "ec2":
        return f"{entry.instance_type} in {entry.region or 'default region'}"
    if entry.provider == "fly":
        return f"app {entry.app}, {entry.vm_size}"
    return "this machine's Docker engine"


def lifetime(entry: HostEntry) -> str:
    if entry.provider in ("ec2", "fly"):
        return "reused" if getattr(entry, "reuse", False) else "per session"
    return "yours"


def run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args)
    if args.action == "trust":
        if not args.host:
            from remotebottle.errors import UsageError

            raise UsageError("`rbottle hosts trust` needs a HOST", hint="rbottle hosts trust vm1")
        resolve_host(args.host, manifest)
        not_available("hosts trust", "issue #5, remote hosts over SSH")
    entries = {"local": resolve_host(None, manifest).entry, **dict(manifest.hosts)}
    if args.format == "json":
        console.print_json(
            [
                {
                    "name": name,
                    "provider": e.provider,
                    "where": describe(e),
                    "lifetime": lifetime(e),
                }
                for name, e in entries.items()
            ]
        )
        return 0
    table = Table("host", "provider", "where", "lifetime")
    for name, entry in entries.items():
        table.add_row(escape(name), entry.provider, escape(describe(entry)), lifetime(entry))
    console.out.print(table)
    return 0
