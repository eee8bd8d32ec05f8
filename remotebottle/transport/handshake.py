"""Reaching an SSH server: TCP with keepalives tuned, then key exchange under a deadline.

paramiko cannot open `direct-streamlocal@openssh.com` channels (paramiko #544):
`StreamlocalTransport` adds them by appending the three type-specific fields to the
CHANNEL_OPEN message paramiko builds for an unknown channel type, so all of paramiko's
channel bookkeeping is reused.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import paramiko
from paramiko.message import Message

from remotebottle.errors import ConnectError
from remotebottle.transport.known_hosts import prefer
from remotebottle.transport.target import SshTarget

log = logging.getLogger(__name__)

STREAMLOCAL = "direct-streamlocal@openssh.com"
_MSG_CHANNEL_OPEN = 90


class StreamlocalTransport(paramiko.Transport):
    """paramiko's Transport, plus `open_streamlocal` (paramiko #544)."""

    def __init__(self, sock: Any, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self._streamlocal = threading.local()

    def open_streamlocal(self, path: str, timeout: float | None = None) -> paramiko.Channel:
        """Open a channel to the unix socket `path` on the server (OpenSSH PROTOCOL 2.4)."""
        self._streamlocal.path = path
        try:
            return self.open_channel(STREAMLOCAL, timeout=timeout)
        finally:
            self._streamlocal.path = None

    def _send_message(self, data: Any) -> None:
        # open_channel() builds "byte 90, string type, uint32 id, uint32 window, uint32 max
        # packet" for a type it does not know and sends it from this thread: append the
        # socket path and the two reserved fields. Anything else passes untouched.
        path = getattr(self._streamlocal, "path", None)
        if path is not None and isinstance(data, Message):
            raw = data.asbytes()
            head = bytes([_MSG_CHANNEL_OPEN]) + _ssh_string(STREAMLOCAL.encode())
            if raw.startswith(head):
                if len(raw) != len(head) + 12:
                    raise paramiko.SSHException(
                        "this paramiko builds CHANNEL_OPEN differently; cannot open "
                        f"{STREAMLOCAL} channels safely"
                    )
                data.add_string(path)
                data.add_string("")
                data.add_int(0)
                self._streamlocal.path = None
        paramiko.Transport._send_message(self, data)  # type: ignore[attr-defined]


def negotiate(
    sock: Any, t: SshTarget, deadline: float, limit: float, preferred: list[str]
) -> StreamlocalTransport:
    """Key exchange within the deadline, asking first for the host key types we know."""
    transport = StreamlocalTransport(sock)
    # paramiko's own limits fire just after ours, so a silent host gets our message.
    transport.banner_timeout = transport.handshake_timeout = deadline - time.monotonic() + 1
    options = transport.get_security_options()
    options.key_types = prefer(options.key_types, preferred)
    done = threading.Event()
    transport.start_client(event=done)
    if not done.wait(max(deadline - time.monotonic(), 0.05)):
        transport.close()
        raise timeout_error(t, limit)
    if not transport.is_active():
        exc = transport.get_exception()
        transport.close()
        if time.monotonic() >= deadline:
            raise timeout_error(t, limit)
        raise ConnectError(
            f"{t.label}: SSH handshake failed: {short(str(exc) or 'connection closed')}",
            hint=f"is an SSH server listening on port {t.port}?",
        )
    return transport


def tcp_connect(
    t: SshTarget, deadline: float, limit: float, keepalive: tuple[float, int]
) -> socket.socket:
    try:
        infos = socket.getaddrinfo(t.hostname, t.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectError(
            f"{t.label}: cannot resolve host name {t.hostname!r} ({exc.strerror})",
            hint="check the address in the hosts entry or ~/.ssh/config, and DNS",
        ) from None
    last: OSError | None = None
    for family, kind, proto, _, addr in infos:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(remaining)
        try:
            sock.connect(addr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        _tcp_keepalive(sock, *keepalive)
        return sock
    if last is None or isinstance(last, TimeoutError):
        raise timeout_error(t, limit)
    if isinstance(last, ConnectionRefusedError):
        raise ConnectError(
            f"{t.label} refused the connection on port {t.port}",
            hint=f"is sshd running there and listening on port {t.port}?",
        )
    raise ConnectError(
        f"{t.label}: cannot connect ({last.strerror or last})",
        hint="check the address, the network route and any firewall",
    )


def _tcp_keepalive(sock: socket.socket, interval: float, count: int) -> None:
    """Declare the link dead only after `count` intervals without an acknowledgement.

    paramiko's own keepalives ask for no reply; TCP then notices a dead peer when that
    keepalive stays unacknowledged for TCP_USER_TIMEOUT, which tolerates missed beats.
    """
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (
        ("TCP_KEEPIDLE", int(interval)),
        ("TCP_KEEPINTVL", int(interval)),
        ("TCP_KEEPCNT", count),
        ("TCP_USER_TIMEOUT", int(interval * count * 1000)),
    ):
        if hasattr(socket, opt) and value > 0:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
            except OSError:
                log.debug("cannot set %s", opt)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def timeout_error(t: SshTarget, limit: float) -> ConnectError:
    return ConnectError(
        f"{t.label} did not answer within {limit:g}s",
        hint="check that the host is up and reachable, or raise connect_timeout",
    )


def short(text: str, width: int = 120) -> str:
    """The first line of `text`, cut to `width` characters (for one-line errors)."""
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= width else line[: width - 1] + "…"


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


__all__ = [
    "STREAMLOCAL",
    "StreamlocalTransport",
    "negotiate",
    "short",
    "tcp_connect",
    "timeout_error",
]
