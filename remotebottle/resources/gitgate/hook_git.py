"""The pre-receive hook's git: a command's output, the remote's policy keys, and the
ref updates a push asks for. See pre_receive.py for what the hook checks."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

UPSTREAM_TIMEOUT = 600


class Refusal(Exception):
    """A reason to refuse the push that ends the checks (they cannot go on)."""


@dataclass(frozen=True)
class Update:
    old: str
    new: str
    ref: str

    @property
    def deletes(self) -> bool:
        return is_zero(self.new)

    @property
    def creates(self) -> bool:
        return is_zero(self.old)


def is_zero(oid: str) -> bool:
    return set(oid) == {"0"}


def say(text: str) -> None:
    for line in text.rstrip("\n").splitlines():
        sys.stderr.write(f"git-gate: {line}\n")
    sys.stderr.flush()


def git(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        input=stdin,
        capture_output=True,
        text=True,
        errors="replace",
        env=env,
        timeout=UPSTREAM_TIMEOUT,
    )


def git_out(*args: str, stdin: str = "") -> str:
    result = git(*args, stdin=stdin)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
        raise Refusal(f"push refused: git {args[0]} failed: {detail[0]}")
    return result.stdout


def allowed(key: str) -> bool:
    return git("config", "--type=bool", "--get", f"gitgate.{key}").stdout.strip() == "true"
