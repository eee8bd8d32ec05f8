"""`rbottle resume`: relaunch a finished bottle from its saved state."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from remotebottle.cli import console
from remotebottle.cli.common import add_command, confirm_or_stop, report_outcome
from remotebottle.cli.start import add_session_options, command_from

DESCRIPTION = """\
Relaunch a bottle that has ended, pinned to its identity: same agent, same host
kind, and Claude Code's prior transcript restored (claude --continue). State is
kept locally in $REMOTEBOTTLE_HOME/state/IDENTITY/, also for remote hosts.

The agent's definition is read again from the manifest the bottle was started
with (plus ~/claude-bottle.json), so grants changed since then apply. The host
is the one its session recorded (address, user, provider settings), even if the
manifest's entry by that name has changed since.

Before anything starts you see what the last session left in ~/.claude/projects.
Transcripts (*.jsonl) are restored. Every other file there is memory that steers
the next session (Claude Code's auto memory, anything else the agent wrote): it
is shown as a diff against the copy you last approved and restored only if you
answer y (default no). --yes does not approve memory; --restore-memory does."""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "resume",
        help="relaunch a bottle from its saved state",
        description=DESCRIPTION,
        epilog="examples:\n  rbottle resume implementer-k3x9q\n"
        "  rbottle resume implementer-k3x9q --yes --restore-memory   unattended, memory too",
    )
    parser.add_argument("identity", metavar="IDENTITY", help="the bottle's identity")
    parser.add_argument(
        "-p",
        "--print",
        dest="print_prompt",
        metavar="PROMPT",
        help="continue with one print-mode turn instead of a session",
    )
    parser.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="skip the resume question (memory still needs a y or --restore-memory)",
    )
    parser.add_argument(
        "--restore-memory",
        action="store_true",
        help="restore the memory files the last session wrote without asking",
    )
    add_session_options(parser)
    parser.set_defaults(func=run_command, accepts_exec=True)


def run_command(args: argparse.Namespace) -> int:
    from remotebottle import memory, state
    from remotebottle.cli.preflight import render_preflight
    from remotebottle.cli.review import render_review
    from remotebottle.cli.transfer import render_ship_progress
    from remotebottle.ops import attach, session
    from remotebottle.ops.plan import StartRequest, plan_start

    meta = state.read_metadata(args.identity)
    loaded = attach.manifest_of(meta)
    request = StartRequest(
        agent=meta.agent,
        host=meta.host,
        command=command_from(args),
        cwd=Path(meta.cwd) if meta.copy_cwd and meta.cwd else None,
        identity=args.identity,
        registry=args.registry,
        allow_old_engine=args.allow_old_engine,
        reconnect_limit=args.reconnect_limit,
        recorded=attach.host_of(args.identity, args.registry),
    )
    preview = plan_start(loaded, request, resolve_secrets=False)
    render_preflight(preview)
    with memory.staged(args.identity) as snapshot:
        decision = memory.Decision(restore_memory=False)
        if snapshot is not None:
            render_review(snapshot.review, state.snapshot_file(args.identity))
            decision = memory.decide(
                snapshot.review,
                args.identity,
                restore_memory=args.restore_memory,
                ask=console.confirm if sys.stdin.isatty() else None,
            )
        if decision.notice:
            console.info(decision.notice)
        confirm_or_stop("Resume this bottle?", args.yes)
        if snapshot is not None and decision.restore_memory:
            snapshot.approve()
        outcome = session.start(
            request,
            preview,
            progress=console.info,
            consent=lambda question: args.yes or console.confirm(question),
            on_ship=render_ship_progress(console.err),
            manifest_file=Path(meta.manifest) if meta.manifest else None,
            transcript=snapshot.archive(with_memory=decision.restore_memory) if snapshot else None,
        )
    return report_outcome(outcome)
