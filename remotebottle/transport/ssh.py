"""One SSH connection to one host (paramiko), checked strictly, kept alive tolerantly.

Settings come from the host entry first, then `~/.ssh/config` (HostName, Port, User,
IdentityFile, IdentitiesOnly, ProxyJump, ProxyCommand, HostKeyAlias, UserKnownHostsFile,
HashKnownHosts), then OpenSSH's defaults. Host keys are checked (`known_hosts`) against
known_hosts files or a key pinned by the caller; unknown and changed keys are refused, never
added. Keys to log in with come from ssh-agent and identity files (`ssh_auth`). Every failure
is a one-line `ConnectError`.

paramiko cannot open `direct-streamlocal@openssh.com` channels (paramiko #544): `_Transport`
adds them by appending the three type-specific fields to the CHANNEL_OPEN message paramiko
builds for an unknown channel type, so all of paramiko's channel bookkeeping is reused.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import paramiko
from paramiko.message import Message

from remotebottle.errors import ConnectError, HostError
from remotebottle.manifest import SshHost
from remotebottle.transport.known_hosts import host_name, load_known, prefer, verify_host_key
from remotebottle.transport.ssh_auth import authenticate

log = logging.getLogger(__name__)

STREAMLOCAL = "direct-streamlocal@openssh.com"
KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 4
_MSG_CHANNEL_OPEN = 90


class _Transport(paramiko.Transport):
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


@dataclass(frozen=True)
class SshTarget:
    """Where and how to connect, after merging the host entry with `~/.ssh/config`."""

    name: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    explicit_identity: bool
    identities_only: bool
    proxy_jump: str | None
    proxy_command: str | None
    host_key_alias: str | None
    known_hosts_files: tuple[str, ...]
    connect_timeout: float
    hash_known_hosts: bool = False

    @property
    def label(self) -> str:
        where = f"{self.hostname}:{self.port}"
        return where if self.name in (self.hostname, where) else f"{self.name} ({where})"

    @property
    def known_hosts_name(self) -> str:
        """The name this host's key is filed under in known_hosts (as OpenSSH does it)."""
        if self.host_key_alias:
            return self.host_key_alias
        return host_name(self.hostname, self.port)

    @property
    def user_known_hosts(self) -> Path:
        """Where a newly trusted key goes: the first UserKnownHostsFile, as OpenSSH does."""
        return Path(self.known_hosts_files[0])


def resolve_target(
    host: SshHost | str,
    *,
    name: str | None = None,
    ssh_config: Path | str | None = None,
    known_hosts: Path | str | None = None,
) -> SshTarget:
    """Merge a host entry (or a bare address/alias) with `~/.ssh/config`; the entry wins.

    Raises:
        ConnectError: the ssh config file cannot be parsed.
    """
    entry = host if isinstance(host, SshHost) else SshHost(provider="ssh", address=host)
    cfg = _lookup_config(entry.address, ssh_config)
    files = cfg.get("identityfile") or []
    identities = (entry.identity_file,) if entry.identity_file else tuple(files)
    user_files = str(cfg.get("userknownhostsfile") or "~/.ssh/known_hosts ~/.ssh/known_hosts2")
    kh_files = [*user_files.split(), *str(cfg.get("globalknownhostsfile") or "").split()]
    kh_files.append("/etc/ssh/ssh_known_hosts")
    if known_hosts:
        kh_files.append(str(known_hosts))
    jump = cfg.get("proxyjump")
    command = cfg.get("proxycommand")
    return SshTarget(
        name=name or entry.address,
        hostname=str(cfg.get("hostname") or entry.address),
        port=int(entry.port or cfg.get("port") or 22),
        user=entry.user or str(cfg.get("user") or "") or getpass.getuser(),
        identity_files=tuple(os.path.expanduser(str(p)) for p in identities),
        explicit_identity=bool(entry.identity_file),
        identities_only=str(cfg.get("identitiesonly", "no")).lower() == "yes",
        proxy_jump=None if not jump or str(jump).lower() == "none" else str(jump),
        proxy_command=None if not command or str(command).lower() == "none" else str(command),
        host_key_alias=str(cfg["hostkeyalias"]) if cfg.get("hostkeyalias") else None,
        known_hosts_files=tuple(dict.fromkeys(os.path.expanduser(p) for p in kh_files)),
        connect_timeout=float(entry.connect_timeout),
        hash_known_hosts=str(cfg.get("hashknownhosts", "no")).lower() == "yes",
    )


def _lookup_config(alias: str, path: Path | str | None) -> dict[str, Any]:
    config_path = Path(path) if path else Path(os.path.expanduser("~/.ssh/config"))
    if not config_path.is_file():
        return {}
    try:
        return dict(paramiko.SSHConfig.from_path(str(config_path)).lookup(alias))
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise ConnectError(
            f"cannot read {config_path}: {exc}", hint="fix the ssh config file, or move it aside"
        ) from None


class SshConnection:
    """One authenticated SSH transport to one host.

    Args:
        host: the host entry (or an address / `~/.ssh/config` alias).
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
        host: SshHost | str,
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
        self._transport: _Transport | None = None
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
        try:
            chan = self._live().open_session(timeout=self.target.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(exc) from None
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
            feeder = threading.Thread(target=_feed, args=(chan, input or b""), daemon=True)
            feeder.start()
            reader = threading.Thread(target=_drain, args=(chan.recv_stderr, err), daemon=True)
            reader.start()
            _drain(chan.recv, out)
            reader.join()
            chan.status_event.wait(timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if not expired.is_set():
                raise self._lost(exc) from None
        finally:
            if timer is not None:
                timer.cancel()
            chan.close()
        if expired.is_set():
            raise HostError(
                f"{self.target.label}: `{_short(cmd)}` did not finish within {timeout:g}s"
            )
        status = chan.exit_status if chan.exit_status_ready() else -1
        return status, b"".join(out), b"".join(err)

    def sftp(self) -> paramiko.SFTPClient:
        """An SFTP client on this connection (close it when done)."""
        try:
            client = paramiko.SFTPClient.from_transport(self._live())
        except (paramiko.SSHException, EOFError, OSError) as exc:
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
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise self._lost(exc) from None

    # -- internals -------------------------------------------------------------------------

    def _live(self) -> _Transport:
        if self._transport is None or not self._transport.is_active():
            raise ConnectError(
                f"{self.target.label}: not connected", hint="the SSH connection was closed or lost"
            )
        return self._transport

    def _lost(self, exc: BaseException) -> ConnectError:
        return ConnectError(
            f"{self.target.label}: the SSH connection failed: {_short(str(exc) or repr(exc))}",
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
        return _tcp_connect(t, deadline, limit, self._keepalive)

    def _via_jump(self, spec: str, deadline: float) -> paramiko.Channel:
        if self._depth >= 8:
            raise ConnectError(f"{self.target.label}: ProxyJump nests too deep (a loop?)")
        hops = [h.strip() for h in spec.split(",") if h.strip()]
        match = re.fullmatch(r"(?:ssh://)?(?:([^@]+)@)?(\[[^\]]+\]|[^:]+)(?::(\d+))?", hops[-1])
        if not match:
            raise ConnectError(f"{self.target.label}: cannot parse ProxyJump {spec!r}")
        user, host, port = match.group(1), match.group(2).strip("[]"), match.group(3)
        entry = SshHost(
            provider="ssh",
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
                f"{t.label}: jump host {jump.target.label} could not reach it ({_short(str(exc))})",
                hint="check the address and port as seen from the jump host",
            ) from None

    def _handshake(self, sock: Any, deadline: float, limit: float) -> _Transport:
        t = self.target
        known = load_known(t.known_hosts_files, t.known_hosts_name)
        preferred = [self._expected.get_name()] if self._expected else [k.key_type for k in known]
        transport = _negotiate(sock, t, deadline, limit, preferred)
        try:
            verify_host_key(
                t.label, t.name, known, transport.get_remote_server_key(), self._expected
            )
        except BaseException:
            transport.close()
            raise
        return transport


def _negotiate(
    sock: Any, t: SshTarget, deadline: float, limit: float, preferred: list[str]
) -> _Transport:
    """Key exchange within the deadline, asking first for the host key types we know."""
    transport = _Transport(sock)
    # paramiko's own limits fire just after ours, so a silent host gets our message.
    transport.banner_timeout = transport.handshake_timeout = deadline - time.monotonic() + 1
    options = transport.get_security_options()
    options.key_types = prefer(options.key_types, preferred)
    done = threading.Event()
    transport.start_client(event=done)
    if not done.wait(max(deadline - time.monotonic(), 0.05)):
        transport.close()
        raise _timeout_error(t, limit)
    if not transport.is_active():
        exc = transport.get_exception()
        transport.close()
        if time.monotonic() >= deadline:
            raise _timeout_error(t, limit)
        raise ConnectError(
            f"{t.label}: SSH handshake failed: {_short(str(exc) or 'connection closed')}",
            hint=f"is an SSH server listening on port {t.port}?",
        )
    return transport


def _tcp_connect(
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
        raise _timeout_error(t, limit)
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


def _timeout_error(t: SshTarget, limit: float) -> ConnectError:
    return ConnectError(
        f"{t.label} did not answer within {limit:g}s",
        hint="check that the host is up and reachable, or raise connect_timeout",
    )


def _feed(chan: paramiko.Channel, data: bytes) -> None:
    try:
        if data:
            chan.sendall(data)
        chan.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass


def _drain(recv: Any, into: list[bytes]) -> None:
    while True:
        chunk = recv(65536)
        if not chunk:
            return
        into.append(chunk)


def _short(text: str, width: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else text
    return line if len(line) <= width else line[: width - 1] + "…"


# -- host keys for `rbottle hosts trust` ---------------------------------------------------


def fetch_host_key(
    host: SshHost | str,
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
    entry = host if isinstance(host, SshHost) else SshHost(provider="ssh", address=host)
    if port is not None:
        entry = entry.model_copy(update={"port": port})
    probe = SshConnection(entry, name=name, ssh_config=ssh_config, known_hosts=known_hosts)
    t = probe.target
    preferred = [k.key_type for k in load_known(t.known_hosts_files, t.known_hosts_name)]
    limit = timeout if timeout is not None else t.connect_timeout
    deadline = time.monotonic() + limit
    try:
        sock = probe._open_socket(deadline, limit)
        try:
            transport = _negotiate(sock, t, deadline, limit, preferred)
        except BaseException:
            sock.close()
            raise
        try:
            return transport.get_remote_server_key()
        finally:
            transport.close()
    finally:
        probe.close()


def _ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


__all__ = [
    "SshConnection",
    "SshTarget",
    "fetch_host_key",
    "resolve_target",
]
