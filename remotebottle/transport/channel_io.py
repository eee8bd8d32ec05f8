"""The data of one exec channel: its stdin sent whole and closed, its output read whole or
handed on line by line before a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import paramiko

# What paramiko raises when the connection under a channel breaks.
LOST = (paramiko.SSHException, EOFError, OSError)
# How long a read waits before it checks whether the connection is still there.
_POLL_SECONDS = 5.0


def feed(chan: paramiko.Channel, data: bytes) -> None:
    """Send `data`, then EOF; a command that exits without reading its input may close first."""
    try:
        if data:
            chan.sendall(data)
        chan.shutdown_write()
    except LOST:
        pass


def drain(recv: Any, into: list[bytes]) -> None:
    while True:
        chunk = recv(65536)
        if not chunk:
            return
        into.append(chunk)


def relay_lines(
    chan: paramiko.Channel,
    deadline: float,
    on_line: Callable[[str], None],
    alive: Callable[[], bool],
) -> None:
    """Hand each line the channel outputs to `on_line` (without its line ending) until EOF.

    Raises:
        TimeoutError: EOF did not come before `deadline` (a `time.monotonic()` value).
        EOFError: `alive()` says the connection is gone.
    """
    pending = b""
    while chunk := _recv_before(chan, deadline, alive):
        *lines, pending = (pending + chunk).split(b"\n")
        for raw in lines:
            on_line(_text(raw))
    if pending:
        on_line(_text(pending))


def _recv_before(chan: paramiko.Channel, deadline: float, alive: Callable[[], bool]) -> bytes:
    """The next output chunk, b"" at EOF."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        chan.settimeout(min(remaining, _POLL_SECONDS))
        try:
            return bytes(chan.recv(65536))
        except TimeoutError:
            if not alive():
                raise EOFError("the SSH transport closed") from None


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace").rstrip("\r")
