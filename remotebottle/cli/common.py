"""Shared pieces of the subcommands: help formatting, common options, confirmation, outcomes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from remotebottle.manifest import Manifest
    from remotebottle.ops.session import Outcome


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep our hand-wrapped descriptions and examples as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)


def add_command(
    sub: Any, name: str, *, help: str, description: str, epilog: str = ""
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog or None,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )
    return parser


def add_manifest_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest",
        metavar="FILE",
        type=Path,
        help="read FILE instead of ./claude-bottle.json (~/claude-bottle.json is still merged)",
    )


def add_host_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--host", metavar="HOST", help=help_text)


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )


def load_manifest(args: argparse.Namespace) -> Manifest:
    from remotebottle import manifest

    explicit: Path | None = getattr(args, "manifest", None)
    if explicit is None:
        return manifest.load()
    if not _is_file(explicit):
        from remotebottle.errors import ManifestError

        raise ManifestError(f"{explicit}: no such manifest file")
    home_file = manifest.default_paths()[0]
    paths = [home_file] if home_file.resolve() != explicit.resolve() else []
    return manifest.load([*paths, explicit])


def project_manifest(args: argparse.Namespace) -> Path | None:
    """The project manifest a start used, recorded so that resume reads the same one."""
    from remotebottle import manifest

    explicit: Path | None = getattr(args, "manifest", None)
    candidate = explicit or Path.cwd() / manifest.MANIFEST_NAME
    return candidate.resolve() if _is_file(candidate) else None


def _is_file(path: Path) -> bool:
    """`path.is_file()`, false for a path the system refuses to look at (too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def confirm_or_stop(
    question: str,
    yes: bool,
    *,
    no_terminal: str = "no terminal to confirm on",
    hint: str = "pass --yes to go ahead without asking",
    refused: str = "not started: you answered no",
) -> None:
    """Ask y/N unless --yes; with no terminal to ask on, refuse rather than guess.

    Raises:
        UsageError: no terminal to ask on (`no_terminal`, `hint`).
        RemoteBottleError: the answer was no (`refused`).
    """
    from remotebottle.cli import console
    from remotebottle.errors import RemoteBottleError, UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(no_terminal, hint=hint)
    if not console.confirm(question):
        raise RemoteBottleError(refused)


def report_outcome(outcome: Outcome) -> int:
    """Tell the user how the session ended and what they can do next; return the status."""
    from remotebottle.cli import console

    if outcome.detached:
        console.info(f"detached; the bottle keeps running: rbottle attach {outcome.identity}")
        return 0
    code = outcome.exit_code if outcome.exit_code is not None else 1
    console.info(
        f"bottle {outcome.identity} ended (exit {code}); "
        f"continue later with: rbottle resume {outcome.identity}"
    )
    return code
