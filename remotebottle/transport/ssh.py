"""One SSH connection to one host (paramiko), checked strictly, kept alive tolerantly.

What to connect to is an `SshEndpoint` (`endpoint`), merged with `~/.ssh/config` into an
`SshTarget` (`target`). Host keys are checked (`known_hosts`) against known_hosts files or
a key pinned by the caller; unknown and changed keys are refused, never added. Keys to log
in with come from ssh-agent and identity files (`ssh_auth`). Every failure is a one-line
`ConnectError`. Reaching the server (TCP, key exchange, streamlocal channels) is
`handshake`; a command's input and output on its channel, `channel_io`.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paramiko

from remotebottle.errors import ConnectError, HostError
from remotebottle.transport.channel_io import LOST, drain, feed, relay_lines
from remotebottle.transport.endpoint import SshEndpoint, as_endpoint
from remotebottle.transport.handshake import (
    StreamlocalTransport,
    negotiate,
    short,
    tcp_connect,
)
from remotebottle.transport.known_hosts import load_known, verify_host_key
from remotebottle.transport.ssh_auth import authenticate
from remotebottle.transport.target import SshTarget, resolve_target

KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 4


class SshConnection:
    """One authenticated SSH transport to one host.

    Args:
        host: what to connect to (or an address / `~/.ssh/config` alias).
        name: the name used in messages and hints (default: the address).
        known_hosts: an extra known_hosts file to trust besides the usual ones.
        expected_host_key: a key learned from the provider; if given, only it is accepted.
        session_key: a login key made for this VM; if given, the only key offered.
        ssh_config: a config file instead of `~/.ssh/config`.
        keepalive_interval: seconds of silence before a keepalive is sent.
        keepalive_count_max: unanswered intervals tolerated before the link counts as dead.
    """

    def __init__(
        self,
        host: SshEndpoint | str,
        *,
        name: str | None = None,
        known_hosts: Path | str | None = None,
        expected_host_key: paramiko.PKey | None = None,
        session_key: paramiko.PKey | None = None,
        ssh_config: Path | str | None = None,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
        keepalive_count_max: int = KEEPALIVE_COUNT_MAX,
        _depth: int = 0,
    ) -> None:
        self.target = resolve_target(
            host, name=name, ssh_config=ssh_config, known_hosts=known_hosts
        )
        self._ssh_config = ssh_config
        self._extra_known_hosts = known_hosts
        self._expected = expected_host_key
        self._session_key = session_key
        self._keepalive = (keepalive_interval, keepalive_count_max)
        self._depth = _depth
        self._transport: StreamlocalTransport | None = None
        self._jump: SshConnection | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def connect(self, timeout: float | None = None) -> Self:
        """Connect, check the host key, authenticate. Idempotent.

        Raises:
            ConnectError: unreachable, timed out, host key refused, or authentication failed.
        """
        if self._transport is not None and self._transport.is_active():
            return self
        limit = timeout if timeout is not None else self.target.connect_timeout
        deadline = time.monotonic() + limit
        sock: Any = None
        try:
            sock = self._open_socket(deadline, limit)
            transport = self._handshake(sock, deadline, limit)
            try:
                authenticate(transport, self.target, deadline, self._session_key)
            except BaseException:
                transport.close()
                raise
        except BaseException:
            if sock is not None:
                sock.close()
            if self._jump is not None:
                self._jump.close()
                self._jump = None
            raise
        transport.set_keepalive(max(1, int(self._keepalive[0])))
        self._transport = transport
        return self

    def close(self) -> None:
        """Close the transport (and the jump host's). Idempotent."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._jump is not None:
            self._jump.close()
            self._jump = None

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def transport(self) -> paramiko.Transport:
        return self._live()

    def is_active(self) -> bool:
        return self._transport is not None and self._transport.is_active()

    # -- use -------------------------------------------------------------------------------

    def run(
        self, cmd: str, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[int, bytes, bytes]:
        """Run `cmd` on the host, feeding `input` to its stdin (then EOF).

        Returns:
            (exit status, stdout, stderr); -1 if the host reported no status.

        Raises:
            HostError: the command did not finish within `timeout` seconds.
            ConnectError: the connection is gone.
        """
        chan = self._open_session()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            chan.close()

        timer = None
        if timeout is not None:
            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            chan.exec_command(cmd)
            threading.Thread(target=feed, args=(chan, input or b""), daemon=True).start()
            reader = threading.Thread(target=drain, args=(chan.recv_stderr, err), daemon=True)
            reader.start()
            drain(chan.recv, out)
            reader.join()
            chan.status_event.wait(timeout)
        except LOST as exc:
            if not expired.is_set():
                raise self._lost(exc) from None
        finally:
            if timer is not None:
                timer.cancel()
            chan.close()
        if expired.is_set():
            raise self._too_slow(cmd, timeout)
        status = chan.exit_status if chan.exit_status_ready() else -1
        return status, b"".join(out), b"".join(err)

    def stream(
        self, cmd: str, *, input: bytes, on_line: Callable[[str], None], timeout: float
    ) -> int:
        """Run `cmd` on the host, feeding `input` to its stdin (then EOF), and hand each line
        of its output (stdout and stderr merged, in order) to `on_line` as it arrives.

        Returns:
            The exit status; -1 if the host reported none.

        Raises:
            HostError: the command did not finish within `timeout` seconds.
            ConnectError: the connection is gone.
        """
        chan = self._open_session()
        deadline = time.monotonic() + timeout
        try:
            chan.set_combine_stderr(True)
            chan.exec_command(cmd)
            threading.Thread(target=feed, args=(chan, input), daemon=True).start()
            relay_lines(chan, deadline, on_line, self.is_active)
            chan.status_event.wait(max(deadline - time.monotonic(), 0.1))
        except TimeoutError:  # before LOST, which it is a kind of (OSError)
            raise self._too_slow(cmd, timeout) from None
        except LOST as exc:
            raise self._lost(exc) from None
        finally:
            chan.close()
        return chan.exit_status if chan.exit_status_ready() else -1

    def sftp(self) -> paramiko.SFTPClient:
        """An SFTP client on this connection (close it when done)."""
        try:
            client = paramiko.SFTPClient.from_transport(self._live())
        except LOST as exc:
            raise self._lost(exc) from None
        if client is None:
            raise ConnectError(f"{self.target.label}: the host refused the SFTP subsystem")
        return client

    def open_unix_channel(self, remote_path: str, timeout: float | None = None) -> paramiko.Channel:
        """A channel connected to the unix socket `remote_path` on the host.

        Raises:
            HostError: the host refused (no such socket, no permission, forwarding disabled).
            ConnectError: the connection is gone.
        """
        transport = self._live()
        try:
            return transport.open_streamlocal(remote_path, timeout=timeout or 30.0)
        except paramiko.ChannelException as exc:
            raise HostError(
                f"{self.target.label}: cannot connect to {remote_path} on the host"
                f" ({exc.text or 'refused'})",
                hint=f"check that the socket exists, {self.target.user} may use it, and sshd"
                " allows stream-local forwarding (AllowStreamLocalForwarding)",
            ) from None
        except LOST as exc:
            raise self._lost(exc) from None

    # -- internals -------------------------------------------------------------------------

    def _live(self) -> StreamlocalTransport:
        if self._transport is None or not self._transport.is_active():
            raise ConnectError(
                f"{self.target.label}: not connected", hint="the SSH connection was closed or lost"
            )
        return self._transport

    def _open_session(self) -> paramiko.Channel:
        try:
            return self._live().open_session(timeout=self.target.connect_timeout)
        except LOST as exc:
            raise self._lost(exc) from None

    def _too_slow(self, cmd: str, timeout: float | None) -> HostError:
        return HostError(f"{self.target.label}: `{short(cmd)}` did not finish within {timeout:g}s")

    def _lost(self, exc: BaseException) -> ConnectError:
        return ConnectError(
            f"{self.target.label}: the SSH connection failed: {short(str(exc) or repr(exc))}",
            hint="check the network and that the host is up; nothing reconnects by itself:"
            " run the command again (`rbottle list --host HOST` shows bottles still running)",
        )

    def _open_socket(self, deadline: float, limit: float) -> Any:
        t = self.target
        if t.proxy_jump:
            return self._via_jump(t.proxy_jump, deadline)
        if t.proxy_command:
            try:
                return paramiko.ProxyCommand(t.proxy_command)
            except (paramiko.SSHException, OSError) as exc:
                raise ConnectError(f"{t.label}: ProxyCommand failed: {exc}") from None
        return tcp_connect(t, deadline, limit, self._keepalive)

    def _via_jump(self, spec: str, deadline: float) -> paramiko.Channel:
        if self._depth >= 8:
            raise ConnectError(f"{self.target.label}: ProxyJump nests too deep (a loop?)")
        hops = [h.strip() for h in spec.split(",") if h.strip()]
        match = re.fullmatch(r"(?:ssh://)?(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?", hops[-1])
        if not match or not 0 < int(match.group(3) or 22) < 65536:
            raise ConnectError(f"{self.target.label}: cannot parse ProxyJump {spec!r}")
        user, host, port = match.group(1), match.group(2).strip("[]"), match.group(3)
        entry = SshEndpoint(
            address=host,
            user=user,
            port=int(port) if port else None,
            connect_timeout=min(max(deadline - time.monotonic(), 0.1), 600),
        )
        jump = SshConnection(
            entry,
            known_hosts=self._extra_known_hosts,
            ssh_config=self._ssh_config,
            keepalive_interval=self._keepalive[0],
            keepalive_count_max=self._keepalive[1],
            _depth=self._depth + 1,
        )
        if len(hops) > 1:
            jump.target = replace(jump.target, proxy_jump=",".join(hops[:-1]))
        jump.connect()
        self._jump = jump
        t = self.target
        try:
            return jump.transport.open_channel(
                "direct-tcpip",
                (t.hostname, t.port),
                ("127.0.0.1", 0),
                timeout=max(deadline - time.monotonic(), 0.1),
            )
        except paramiko.SSHException as exc:
            raise ConnectError(
                f"{t.label}: jump host {jump.target.label} could not reach it ({short(str(exc))})",
                hint="check the address and port as seen from the jump host",
            ) from None

    def _handshake(self, sock: Any, deadline: float, limit: float) -> StreamlocalTransport:
        t = self.target
        known = load_known(t.known_hosts_files, t.known_hosts_name)
        preferred = [self._expected.get_name()] if self._expected else [k.key_type for k in known]
        transport = negotiate(sock, t, deadline, limit, preferred)
        try:
            verify_host_key(
                t.label, t.name, known, transport.get_remote_server_key(), self._expected
            )
        except BaseException:
            transport.close()
            raise
        return transport


# -- host keys for `rbottle hosts trust` ---------------------------------------------------


def fetch_host_key(
    host: SshEndpoint | str,
    port: int | None = None,
    *,
    name: str | None = None,
    timeout: float | None = None,
    ssh_config: Path | str | None = None,
    known_hosts: Path | str | None = None,
) -> paramiko.PKey:
    """The key a host presents, without authenticating (to show and then `trust` it).

    Like a connection, it asks first for the key types known_hosts has for the host, so
    that a recorded key is compared with the same type of key.

    Raises:
        ConnectError: the host cannot be reached or does not speak SSH.
    """
    entry = as_endpoint(host)
    if port is not None:
        entry = replace(entry, port=port)
    probe = SshConnection(entry, name=name, ssh_config=ssh_config, known_hosts=known_hosts)
    t = probe.target
    preferred = [k.key_type for k in load_known(t.known_hosts_files, t.known_hosts_name)]
    limit = timeout if timeout is not None else t.connect_timeout
    deadline = time.monotonic() + limit
    try:
        sock = probe._open_socket(deadline, limit)
        try:
            transport = negotiate(sock, t, deadline, limit, preferred)
        except BaseException:
            sock.close()
            raise
        try:
            return transport.get_remote_server_key()
        finally:
            transport.close()
    finally:
        probe.close()


__all__ = [
    "SshConnection",
    "SshEndpoint",
    "SshTarget",
    "fetch_host_key",
    "resolve_target",
]
