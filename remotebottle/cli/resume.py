"""`rbottle resume`: relaunch a finished bottle from its saved state."""

from __future__ import annotations

import argparse
from typing import Any

from remotebottle.cli.common import add_command, not_available
from remotebottle.errors import BottleError
from remotebottle.state import state_dir

DESCRIPTION = """\
Relaunch a bottle that has ended, pinned to its identity: same agent, same host
kind, and Claude Code's prior transcript restored (claude --continue). State is
kept locally in $REMOTEBOTTLE_HOME/state/IDENTITY/, also for remote hosts.

After a capability change is approved, resume rebuilds the bottle's image
from the per-bottle Dockerfile saved in that state directory."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "resume",
        help="relaunch a bottle from its saved state",
        description=DESCRIPTION,
        epilog="example:\n  rbottle resume implementer-k3x9q",
    )
    parser.add_argument("identity", metavar="IDENTITY", help="the bottle's identity")
    parser.add_argument("-y", "--yes", action="store_true", help="skip the y/N question")
    parser.set_defaults(func=run, accepts_exec=True)


def run(args: argparse.Namespace) -> int:
    directory = state_dir(args.identity)
    if not (directory / "metadata.json").is_file():
        raise BottleError(
            f"no saved state for {args.identity} (looked in {directory})",
            hint="`rbottle list` shows known bottles; state is written when a session ends",
        )
    not_available("resume", "issue #4, the bottle on the local engine")
