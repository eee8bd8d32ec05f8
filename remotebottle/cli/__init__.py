"""`rbottle`: the command line. Parses, calls one use-case function, renders.

`main` is the only place that prints errors: one `error:` line per problem, a
`hint:` line, a non-zero exit, and a traceback only with `--debug`. Log records
reach stderr from WARNING up (paramiko's own chatter not at all) unless `--debug`,
which shows everything from DEBUG up.

`rbottle --help` builds every command's parser, so a command module is cheap to import:
at its top, the standard library, `argparse` helpers and `console` only; its `run`
function imports what does the work (docker, paramiko, boto3, pydantic, rich tables, …).
Names used only in annotations come in under `TYPE_CHECKING`.
`tests/unit/test_startup.py` holds the help path to that.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from remotebottle import __version__
from remotebottle.cli import (
    attach,
    cleanup,
    console,
    dashboard,
    demo,
    doctor,
    env,
    hosts,
    listing,
    resume,
    schema,
    start,
)
from remotebottle.cli.common import HelpFormatter
from remotebottle.errors import EngineError, RemoteBottleError, UsageError, printable
from remotebottle.hosts.registry import DEFAULT, Registry
from remotebottle.logfilter import RedactSecrets

COMMANDS = (start, attach, resume, listing, cleanup, hosts, env, dashboard, demo, schema, doctor)

DESCRIPTION = """\
Run Claude Code agents in locked-down Docker bottles, on the local engine or on
a disposable remote VM, with the session streamed back to this terminal.

A bottle gets only what its manifest (claude-bottle.json) grants: env, skills,
a prompt, egress hosts behind a DLP proxy, git remotes behind a secret-scanning
gate, and credentials injected by a proxy so that the agent never holds them."""

EPILOG = """\
first steps:
  rbottle doctor                          check the engine, images and ssh-agent
  rbottle start implementer --dry-run     see what a bottle would get
  rbottle start implementer --host vm1    run it on a remote host
  rbottle schema > claude-bottle.schema.json   editor completion for the manifest

Run `rbottle <command> --help` for each command's options."""


class _Parser(argparse.ArgumentParser):
    """Its usage error is one line quoting what was typed, escaped and cut short as every
    error is. (Each command's parser is one too: argparse makes them of this class.)"""

    def error(self, message: str) -> NoReturn:
        super().error(printable(message))


def on_terminal(exc: RemoteBottleError) -> RemoteBottleError:
    """`exc` as the terminal shows it: each line escaped and cut short (the values a
    message quotes come from files and arguments anyone may have written)."""
    message = "\n".join(printable(line) for line in exc.message.split("\n"))
    return RemoteBottleError(message, hint=printable(exc.hint))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rbottle",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rbottle {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and debug detail on errors"
    )
    sub = parser.add_subparsers(title="commands", metavar="<command>")
    for command in COMMANDS:
        command.register(sub)
    return parser


def split_exec(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """Split `… -- CMD ARGS` into our arguments and the command to run in the bottle."""
    args = list(argv)
    if "--" not in args:
        return args, None
    index = args.index("--")
    return args[:index], args[index + 1 :]


class _LogFormatter(logging.Formatter):
    def __init__(self, debug: bool) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s: %(message)s" if debug else None)
        self.debug = debug

    def format(self, record: logging.LogRecord) -> str:
        if self.debug:
            return super().format(record)
        return f"{record.levelname.lower()}: {record.getMessage()}"


def configure_logging(debug: bool) -> None:
    """Log records on stderr: WARNING and up, but none of paramiko's (it logs failed
    channel opens and dropped connections as errors; the caller reports what matters);
    everything with --debug. Credentials in any record are redacted (botocore's debug
    lines show request signatures and session tokens). Handlers the process already has
    (pytest's) are kept."""
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():  # a record written while a session holds the terminal raw
        handler.terminator = "\r\n"
    handler.setFormatter(_LogFormatter(debug))
    handler.addFilter(RedactSecrets.from_environment())
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, handlers=[handler])
    logging.getLogger("paramiko").setLevel(logging.NOTSET if debug else logging.CRITICAL + 1)


def main(argv: Sequence[str] | None = None, registry: Registry | None = None) -> int:
    """Run one command; `registry` decides what kind each host is (default: the real
    providers; tests pass one with their own cloud)."""
    args_in, exec_argv = split_exec(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(args_in)
    # Python 3.11's argparse reads `--opt=--` as an empty list, not as the text `--`.
    if any(isinstance(value, list) for value in vars(args).values()):
        parser.error("`--` cannot be an option's value")
    debug = bool(getattr(args, "debug", False))
    configure_logging(debug)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    args.exec_argv = exec_argv
    args.registry = registry or DEFAULT
    try:
        if exec_argv is not None and not getattr(args, "accepts_exec", False):
            raise UsageError(
                "`-- CMD…` is only accepted by `rbottle start` and `rbottle resume`",
                hint="remove the `--` and what follows it",
            )
        return func(args)
    except RemoteBottleError as exc:
        if debug:
            for line in traceback.format_exc().splitlines():
                console.info(printable(line))
        console.error(on_terminal(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        console.info("interrupted")
        return 130
    except Exception as exc:
        if not _from_the_engine_client(exc):
            raise
        if debug:
            for line in traceback.format_exc().splitlines():
                console.info(printable(line))
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        console.error(
            on_terminal(
                EngineError(
                    f"the Docker engine's connection failed: {first}",
                    hint="the engine may be overloaded or gone; run the command again"
                    " (`rbottle cleanup` removes what a failed start left)",
                )
            )
        )
        return EngineError.exit_code


def _from_the_engine_client(exc: BaseException) -> bool:
    """An error docker-py or its HTTP stack raised that no layer turned into ours: the
    last line of defence against a traceback (a timeout under load, say)."""
    return type(exc).__module__.split(".")[0] in ("docker", "requests", "urllib3")
