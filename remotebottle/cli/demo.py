"""`rbottle demo`: a real bottle on the local engine refusing to leak."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command

DESCRIPTION = """\
Start a real bottle on the local engine and probe it from inside, printing
pass/fail: an allowlisted request passes, a host off the allowlist is refused,
a request body carrying a fake credential is blocked by DLP, a secret granted
to the bottle is refused in a body and in a header even to the allowed host,
the credential route refuses to have the API fetch data out for the agent, the
cloud metadata address is refused, a direct connection without the proxy
has no route, and a git push carrying a fake credential is refused by the git
gate.

Needs no credentials and no internet: the allowlisted upstream and the git
server are small servers the demo starts itself. Everything is removed at the end. Exits 1 if
any probe fails."""


def register(sub: Any) -> None:
    parser = add_command(
        sub, "demo", help="watch a bottle refuse to leak a secret", description=DESCRIPTION
    )
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from remotebottle.demo import run_demo

    results = run_demo(progress=console.info)
    table = Table("probe", "expected", "got", "", "what it shows")
    for result in results:
        mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
        table.add_row(
            escape(result.probe.name),
            result.probe.expected,
            escape(result.got),
            mark,
            escape(result.probe.meaning),
        )
    console.out.print(table)
    failed = [r for r in results if not r.passed]
    console.info(f"{len(results) - len(failed)}/{len(results)} probes behaved as a bottle should")
    return 1 if failed else 0
