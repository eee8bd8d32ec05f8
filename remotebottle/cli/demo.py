"""`rbottle demo`: a real bottle on the local engine refusing to leak."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli.common import add_command, not_available

DESCRIPTION = """\
Start a real bottle on the local engine and probe it, printing pass/fail:
an allowlisted request passes, a host off the allowlist is refused, a request
body carrying a fake credential is blocked by DLP, a direct connection without
the proxy has no route, and a git push carrying a fake key is refused.
Needs no credentials; everything the probes reach is started by the demo."""


def register(sub: Any) -> None:
    parser = add_command(
        sub, "demo", help="watch a bottle refuse to leak a secret", description=DESCRIPTION
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    not_available("demo", "issue #4, the bottle on the local engine")
