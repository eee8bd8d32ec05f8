"""Manifest values that may be secret: literal, `?prompt text`, or `${HOST_VAR}` templates.

Values are resolved on the local machine only, into `SecretStr`, so they never
appear in a plan, a log line or a repr.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from remotebottle.errors import ManifestError

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Prompter = Callable[[str], str]


def ask_no_echo(question: str) -> str:
    """Ask on the terminal without echo; refuse when there is no terminal to ask on."""
    try:
        return getpass.getpass(f"{question}: ")
    except (EOFError, OSError):
        raise ManifestError(
            f"cannot ask for {question!r}: no terminal",
            hint="run interactively, or use a '${VAR}' value read from the environment",
        ) from None


@dataclass(frozen=True)
class ValueSource:
    """Where a manifest value comes from, without the value itself."""

    kind: str  # "literal" | "prompt" | "env"
    question: str = ""
    variables: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "prompt":
            return "asked at start"
        if self.kind == "env":
            return "from " + ", ".join(f"${v}" for v in self.variables)
        return "literal"


def source_of(raw: str) -> ValueSource:
    if raw.startswith("?"):
        return ValueSource("prompt", question=raw[1:].strip() or "value")
    variables = tuple(dict.fromkeys(_VAR_RE.findall(raw)))
    if variables:
        return ValueSource("env", variables=variables)
    return ValueSource("literal")


def check_available(raw: str, where: str, environ: Mapping[str, str] | None = None) -> None:
    """Fail now if `raw` names a variable the local environment lacks.

    Raises:
        ManifestError: naming the variable and the JSON path `where`.
    """
    env = os.environ if environ is None else environ
    for var in source_of(raw).variables:
        if var not in env:
            raise ManifestError(
                f"{where}: ${{{var}}} is not set in the local environment",
                hint=f"export {var}=… before starting, or change the manifest value",
            )


def resolve(
    raw: str,
    where: str,
    environ: Mapping[str, str] | None = None,
    prompter: Prompter = ask_no_echo,
) -> SecretStr:
    """Resolve a manifest value on the local machine.

    Args:
        raw: the value as written in the manifest.
        where: its JSON path, for error messages.
        environ: the environment to read `${VAR}` from (default: os.environ).
        prompter: asks a question without echo (default: the terminal).

    Raises:
        ManifestError: a referenced variable is not set, or nobody can be asked.
    """
    env = os.environ if environ is None else environ
    source = source_of(raw)
    if source.kind == "prompt":
        return SecretStr(prompter(source.question))
    check_available(raw, where, env)
    return SecretStr(_VAR_RE.sub(lambda m: env[m.group(1)], raw))
