"""All terminal output goes through here: data on stdout, messages on stderr."""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any

from rich.console import Console

from remotebottle.errors import RemoteBottleError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    err.print(message, markup=False)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {_escape(message)}")


def error(exc: RemoteBottleError, debug: bool = False) -> None:
    if debug:
        err.print(traceback.format_exc(), markup=False)
    for line in exc.message.splitlines() or ["(no message)"]:
        err.print(f"[red bold]error:[/] {_escape(line)}")
    if exc.hint:
        err.print(f"[cyan]hint:[/] {_escape(exc.hint)}")


def confirm(question: str) -> bool:
    """A y/N question; no terminal means no."""
    if not sys.stdin.isatty():
        return False
    err.print(f"{question} [y/N] ", end="", markup=False)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
