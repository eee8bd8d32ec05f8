"""`rbottle doctor`: what is missing on this machine and how to fix it."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command, add_format_option, add_manifest_option

DESCRIPTION = """\
Check the local engine (reachable, version, gVisor), the images bottles use,
the manifest, and ssh-agent. Each problem comes with the command that fixes it.
Exits 1 when something required fails, 0 otherwise (warnings included)."""

MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def register(sub: Any) -> None:
    parser = add_command(
        sub, "doctor", help="check this machine and say what to fix", description=DESCRIPTION
    )
    add_format_option(parser)
    add_manifest_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from remotebottle import manifest
    from remotebottle.doctor import run_checks

    paths = None
    if args.manifest is not None:
        paths = [manifest.default_paths()[0], args.manifest]
    checks = run_checks(manifest_paths=paths)
    failed = any(c.status == "fail" for c in checks)
    if args.format == "json":
        console.print_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
        return 1 if failed else 0
    table = Table("check", "", "detail", "fix")
    for check in checks:
        table.add_row(
            escape(check.name), MARK[check.status], escape(check.detail), escape(check.fix)
        )
    console.out.print(table)
    return 1 if failed else 0
