"""`rbottle start`: plan a bottle for an agent, show the preflight, and run it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from remotebottle.cli import console
from remotebottle.cli.common import (
    add_command,
    add_host_option,
    add_manifest_option,
    confirm_or_stop,
    load_manifest,
    project_manifest,
    report_outcome,
)
from remotebottle.errors import UsageError

if TYPE_CHECKING:
    from remotebottle.backend.spec import Command

DESCRIPTION = """\
Start a bottle for AGENT and attach this terminal to Claude Code inside it.

The agent, its bottle and its grants come from claude-bottle.json (the project
file and ~/claude-bottle.json, merged). Before anything is created you see the
preflight (what the bottle gets) and answer y/N; --yes skips the question.

With no --host the bottle runs on the local Docker engine. --host adds a VM and
nothing else changes: a hosts entry from the manifest, an ~/.ssh/config alias,
ssh://user@host[:port], or `ec2` / `fly` for a VM made for this session.

Detach with Ctrl-P Ctrl-Q (the bottle keeps running; `rbottle attach` returns).
If the network to a remote host drops, the bottle keeps running there and this
command reconnects and attaches again by itself, showing what the agent printed
meanwhile; after --reconnect-limit it gives up and names `rbottle attach`.
When the agent exits the bottle is removed and its transcript kept for
`rbottle resume IDENTITY`. The exit status is the agent's."""

EPILOG = """\
examples:
  rbottle start implementer                         interactive session, local engine
  rbottle start implementer --host vm1              the same on a remote host
  rbottle start implementer -p "run the tests"      one Claude Code turn, print mode
  rbottle start implementer -- bash -lc 'git status'   run a command instead of claude
  rbottle start implementer --dry-run --format=json    the resolved plan, no side effects

The plan never holds a secret value: env and header values are shown by source
("literal", "asked at start", "from $VAR")."""


def register(sub: Any) -> None:
    parser = add_command(
        sub, "start", help="start a bottle for an agent", description=DESCRIPTION, epilog=EPILOG
    )
    parser.add_argument("agent", metavar="AGENT", help="an agent named in the manifest")
    add_host_option(parser, "where to run (default: the local engine)")
    parser.add_argument(
        "-p",
        "--print",
        dest="print_prompt",
        metavar="PROMPT",
        help="run one Claude Code turn in print mode and exit with its status",
    )
    parser.add_argument(
        "--cwd",
        metavar="DIR",
        type=Path,
        help="copy DIR (minus what .gitignore excludes) into the bottle as the workdir",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and exit; create nothing"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="plan format for --dry-run (json only with --dry-run)",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="skip the y/N preflight question")
    add_session_options(parser)
    add_manifest_option(parser)
    parser.set_defaults(func=run_command, accepts_exec=True)


def add_session_options(parser: argparse.ArgumentParser) -> None:
    """Options `start` and `resume` share."""
    parser.add_argument(
        "--allow-old-engine",
        action="store_true",
        help="start on a host whose Docker is older than 25.0.5 all the same: its internal"
        " networks leak DNS (CVE-2024-29018); refused without this flag",
    )
    add_reconnect_option(parser)


def add_reconnect_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reconnect-limit",
        metavar="SECONDS",
        type=_seconds,
        default=600.0,
        help="how long to keep reconnecting to a remote host after the network drops"
        " (default: 600); on a host you own the bottle keeps running either way",
    )


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # too long for the system to look at
        return False


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError("between 0 and 86400 seconds")
    return value


def command_from(args: argparse.Namespace) -> Command:
    from remotebottle.backend.spec import Command

    exec_argv: list[str] | None = args.exec_argv
    if args.print_prompt is not None and exec_argv is not None:
        raise UsageError("-p PROMPT and `-- CMD` cannot be combined", hint="choose one")
    if exec_argv is not None:
        if not exec_argv:
            raise UsageError("`--` must be followed by a command", hint="e.g. -- bash -lc 'ls'")
        return Command(mode="exec", argv=tuple(exec_argv))
    if args.print_prompt is not None:
        return Command(mode="print", prompt=args.print_prompt)
    return Command()


def run_command(args: argparse.Namespace) -> int:
    from remotebottle.cli.preflight import render_preflight
    from remotebottle.cli.transfer import render_ship_progress
    from remotebottle.ops import session
    from remotebottle.ops.plan import StartRequest, plan_start
    from remotebottle.timing import phase

    if args.format == "json" and not args.dry_run:
        raise UsageError(
            "--format=json is only for --dry-run",
            hint="use `rbottle start AGENT --dry-run --format=json`",
        )
    if args.cwd is not None and not _is_dir(args.cwd):
        raise UsageError(f"--cwd {args.cwd}: not a directory")
    request = StartRequest(
        agent=args.agent,
        host=args.host,
        command=command_from(args),
        cwd=args.cwd.resolve() if args.cwd else None,
        registry=args.registry,
        allow_old_engine=args.allow_old_engine,
        reconnect_limit=args.reconnect_limit,
    )
    with phase("preflight"):
        manifest = load_manifest(args)
        preview = plan_start(manifest, request, resolve_secrets=False)
    if args.dry_run and args.format == "json":
        console.print_json(preview.to_dict())
        return 0
    render_preflight(preview)
    if args.dry_run:
        return 0
    confirm_or_stop("Start this bottle?", args.yes)
    outcome = session.start(
        request,
        preview,
        progress=console.info,
        consent=lambda question: args.yes or console.confirm(question),
        on_ship=render_ship_progress(console.err),
        manifest_file=project_manifest(args),
    )
    return report_outcome(outcome)
