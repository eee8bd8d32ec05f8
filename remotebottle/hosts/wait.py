"""Waiting on a cloud VM: polling under a deadline, retrying a transient refusal, the SSH
readiness probe, and the UTC timestamps providers keep in tags and metadata.

Deadlines are `time.monotonic()` values. Readiness is sshd's `SSH-` banner, not a TCP
connect: a cloud's proxy may accept a connection before any VM is behind it.
"""

from __future__ import annotations

import datetime
import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def deadline_after(seconds: float) -> float:
    """The monotonic time `seconds` from now."""
    return time.monotonic() + seconds


def remaining(deadline: float) -> float:
    """Seconds left until `deadline`, never below 0."""
    return max(0.0, deadline - time.monotonic())


def poll_until(
    check: Callable[[], T | None],
    *,
    deadline: float,
    interval: float,
    timed_out: Callable[[], BaseException],
) -> T:
    """Call `check` every `interval` seconds until it returns something other than None.

    Returns:
        What `check` returned.

    Raises:
        what `timed_out()` returns, as soon as the next call would come after `deadline`;
        whatever `check` raises.
    """
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() + interval > deadline:
            raise timed_out()
        time.sleep(interval)


def retry_while(
    attempt: Callable[[], T],
    transient: Callable[[Exception], bool],
    *,
    deadline: float,
    interval: float,
) -> T:
    """`attempt()`, made again every `interval` seconds while it fails with an error that
    `transient` accepts and `deadline` has not passed; any other error (or the last one)
    propagates."""
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not transient(exc) or time.monotonic() > deadline:
                raise
        time.sleep(interval)


def ssh_problem(address: str, port: int, timeout: float) -> str:
    """Why address:port is not (yet) an SSH server: "" when one answers with its `SSH-`
    banner within `timeout` seconds, else "no SSH banner" or the name of the error."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            if sock.recv(64).startswith(b"SSH-"):
                return ""
            return "no SSH banner"
    except OSError as exc:
        return type(exc).__name__


def ssh_banner(address: str, port: int, timeout: float = 5.0) -> bool:
    """Whether an SSH server answers on address:port with its `SSH-` banner."""
    return not ssh_problem(address, port, timeout)


def wait_for_ssh(
    address: str,
    port: int,
    *,
    deadline: float,
    timed_out: Callable[[str], BaseException],
    interval: float = 1.0,
    probe_timeout: float = 10.0,
) -> None:
    """Probe address:port every `interval` seconds until sshd's banner arrives.

    Raises:
        what `timed_out(last problem)` returns once `deadline` is reached.
    """
    last = "no answer"

    def answered() -> bool | None:
        nonlocal last
        last = ssh_problem(address, port, min(probe_timeout, max(remaining(deadline), 0.1)))
        return True if not last else None

    poll_until(answered, deadline=deadline, interval=interval, timed_out=lambda: timed_out(last))


def utc_now() -> datetime.datetime:
    """Now, in UTC, to the second (what tags and metadata can hold)."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def after_minutes(minutes: float) -> datetime.datetime:
    """`utc_now()` plus `minutes`: when a VM's TTL runs out if it is renewed now."""
    return utc_now() + datetime.timedelta(minutes=minutes)


def iso(moment: datetime.datetime) -> str:
    """`2025-01-31T12:00:00Z`."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: object) -> datetime.datetime | None:
    """A timestamp as `iso` writes it (UTC when it names no zone); None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
