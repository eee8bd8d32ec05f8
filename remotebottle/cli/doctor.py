"""`rbottle doctor`: what is missing on this machine, or on a host, and how to fix it."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_format_option,
    add_host_option,
    add_manifest_option,
)

DESCRIPTION = """\
Check the engine bottles run on: reachable, its Docker version and whether
CVE-2024-29018 (DNS out of internal networks, fixed in 25.0.5) is fixed in it,
its runtimes, and whether gVisor (runsc) runs a container there; then the images
bottles use, the manifest, and ssh-agent. Each problem comes with what fixes it.

With --host the host's engine is checked, reached as `rbottle start --host` reaches
it; Docker is not installed there if it is missing (doctor changes nothing).
Exits 1 when something required fails, 0 otherwise (warnings included)."""

EPILOG = """\
examples:
  rbottle doctor                       this machine's engine
  rbottle doctor --host vm1            a host's engine, over SSH
  rbottle doctor --host vm1 --format=json"""

MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "doctor",
        help="check this machine or a host and say what to fix",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    add_host_option(parser, "check this host's engine (default: the local one)")
    add_format_option(parser)
    add_manifest_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from remotebottle import manifest
    from remotebottle.doctor import diagnose_host, diagnose_local
    from remotebottle.errors import ManifestError
    from remotebottle.hosts.resolve import resolve_host

    paths = None
    if args.manifest is not None:
        paths = [manifest.default_paths()[0], args.manifest]
    if args.host is None:
        diagnosis = diagnose_local(manifest_paths=paths)
    else:
        try:
            loaded = manifest.load(paths)
        except ManifestError:
            loaded = manifest.Manifest()  # the manifest check says what is wrong with it
        host = resolve_host(args.host, loaded, args.registry)
        diagnosis = diagnose_host(host, paths, progress=console.info)
    failed = diagnosis.failed
    if args.format == "json":
        console.print_json(
            {
                "ok": not failed,
                "host": diagnosis.host,
                "engine": diagnosis.engine,
                "checks": [asdict(c) for c in diagnosis.checks],
            }
        )
        return 1 if failed else 0
    table = Table("check", "", "detail", "fix", title=f"host: {escape(diagnosis.host)}")
    for check in diagnosis.checks:
        table.add_row(
            escape(check.name), MARK[check.status], escape(check.detail), escape(check.fix)
        )
    console.out.print(table)
    return 1 if failed else 0
