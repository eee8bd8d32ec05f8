"""Shared pieces of the subcommands: help formatting, common options, unlanded commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NoReturn

from remotebottle import manifest
from remotebottle.errors import NotAvailableYet


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


def add_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )


def load_manifest(args: argparse.Namespace) -> manifest.Manifest:
    explicit: Path | None = getattr(args, "manifest", None)
    if explicit is None:
        return manifest.load()
    if not explicit.is_file():
        from remotebottle.errors import ManifestError

        raise ManifestError(f"{explicit}: no such manifest file")
    home_file = manifest.default_paths()[0]
    paths = [home_file] if home_file.resolve() != explicit.resolve() else []
    return manifest.load([*paths, explicit])


def not_available(command: str, lands_with: str) -> NoReturn:
    """Say honestly that a command has not landed yet, and exit non-zero."""
    raise NotAvailableYet(
        f"`rbottle {command}` is not available in this version yet: it lands with {lands_with}",
        hint="`rbottle start <agent> --dry-run` and `rbottle doctor` work today",
    )
