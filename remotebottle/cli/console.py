"""All terminal output goes through here: data on stdout, messages on stderr.

`out` (stdout) and `err` (stderr) are rich consoles made on first use, so that importing
this module (every command does, and `rbottle --help` imports every command) does not
import rich.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import TYPE_CHECKING, Any

from remotebottle.errors import RemoteBottleError

if TYPE_CHECKING:
    from rich.console import Console

    out: Console
    err: Console


if not TYPE_CHECKING:  # hidden from mypy, which would type every unknown name as a Console

    def __getattr__(name: str) -> Console:
        """`console.out` and `console.err` before their first use (PEP 562)."""
        if name in ("out", "err"):
            return _made(name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _err() -> Console:
    # Not `err`: a bare global name is not looked up through the module's `__getattr__`.
    return _made("err")


def _made(name: str) -> Console:
    """The console `name` ("out" or "err"), made and kept as a module global on first use."""
    made: Console | None = globals().get(name)
    if made is None:
        from rich.console import Console

        made = Console(stderr=name == "err", highlight=False, soft_wrap=True)
        globals()[name] = made
    return made


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def info(message: str) -> None:
    _err().print(message, markup=False)


def warn(message: str) -> None:
    _err().print(f"[yellow]warning:[/] {_escape(message)}")


def error(exc: RemoteBottleError, debug: bool = False) -> None:
    if debug:
        _err().print(traceback.format_exc(), markup=False)
    for line in exc.message.splitlines() or ["(no message)"]:
        _err().print(f"[red bold]error:[/] {_escape(line)}")
    if exc.hint:
        _err().print(f"[cyan]hint:[/] {_escape(exc.hint)}")


def confirm(question: str) -> bool:
    """A y/N question; no terminal means no."""
    if not sys.stdin.isatty():
        return False
    _err().print(f"{question} [y/N] ", end="", markup=False)
    try:
        answer = input()
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
