"""A private local unix socket forwarded to the remote Docker socket over one SSH transport.

Each local connection gets its own `direct-streamlocal@openssh.com` channel on the
`SshConnection`, and two pump threads copy bytes both ways. Half-closes are passed on
(local EOF -> channel EOF, channel EOF -> `shutdown(SHUT_WR)`), which `docker exec` stdin
EOF and hijacked attach streams depend on. The socket is mode 0600 in a 0700 directory,
under `$XDG_RUNTIME_DIR/rbottle/` when there is one, else a fresh temporary directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import selectors
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import docker
import paramiko

from remotebottle.errors import RemoteBottleError
from remotebottle.transport.ssh import SshConnection

log = logging.getLogger(__name__)

DOCKER_SOCKET = "/var/run/docker.sock"
_CHUNK = 256 * 1024
_SUN_PATH_MAX = 100  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS
# What paramiko raises when a channel or its transport goes away under a send.
_GONE = (OSError, EOFError, paramiko.SSHException)


class DockerTunnel:
    """`unix://<private dir>/docker.sock` on this machine -> `remote_socket` on the host.

    Args:
        conn: a connected `SshConnection`; the tunnel does not close it.
        remote_socket: the Docker socket on the host.
        name: names the runtime directory (default: the connection's name).
    """

    def __init__(
        self,
        conn: SshConnection,
        remote_socket: str = DOCKER_SOCKET,
        *,
        name: str | None = None,
    ) -> None:
        conn.transport  # noqa: B018  (raises ConnectError now rather than on first use)
        self._conn = conn
        self.remote_socket = remote_socket
        self._lock = threading.Lock()
        self._pumps: set[_Pump] = set()
        self._closed = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self.directory = _private_dir(name or conn.target.name)
        self.path = self.directory / "docker.sock"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._listener.bind(str(self.path))
            # The directory is 0700 already; the socket mode is a second lock on the door.
            os.chmod(self.path, 0o600)
            self._listener.listen(128)
        except OSError as exc:
            self._cleanup()
            raise RemoteBottleError(f"cannot listen on {self.path}: {exc}") from None
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"rbottle-tunnel-{conn.target.name}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """`unix://…`, for `DOCKER_HOST` or `docker.DockerClient(base_url=…)`."""
        return f"unix://{self.path}"

    def client(self, **kwargs: Any) -> docker.DockerClient:
        """A docker-py client on the tunnel; `kwargs` go to `docker.DockerClient`."""
        kwargs.setdefault("version", "auto")
        return docker.DockerClient(base_url=self.url, **kwargs)

    def replace_connection(self, conn: SshConnection) -> None:
        """Carry new local connections over `conn` (after a reconnect); the path stays."""
        with self._lock:
            self._conn = conn

    @property
    def active_streams(self) -> int:
        with self._lock:
            return len(self._pumps)

    def close(self) -> None:
        """Stop accepting, close every forwarded stream, remove the socket and its directory."""
        if self._closed.is_set():
            return
        self._closed.set()
        try:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
            with self._lock:
                pumps = list(self._pumps)
            for pump in pumps:
                pump.abort()
        finally:
            self._cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _cleanup(self) -> None:
        self._listener.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.directory, ignore_errors=True)

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closed.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not self._listener or self._closed.is_set():
                        continue
                    try:
                        local, _ = self._listener.accept()
                    except OSError:
                        continue
                    threading.Thread(
                        target=self._forward, args=(local,), name="rbottle-tunnel-open", daemon=True
                    ).start()

    def _forward(self, local: socket.socket) -> None:
        with self._lock:
            conn = self._conn
        try:
            chan = conn.open_unix_channel(self.remote_socket)
        except RemoteBottleError as exc:
            # The local client sees its connection closed; say why in the log.
            log.warning("docker tunnel: %s", exc.message)
            local.close()
            return
        pump = _Pump(local, chan, self._forget)
        with self._lock:
            if self._closed.is_set():
                pump.abort()
                local.close()
                return
            self._pumps.add(pump)
        pump.start()

    def _forget(self, pump: _Pump) -> None:
        with self._lock:
            self._pumps.discard(pump)


class _Pump:
    """Copies one local connection <-> one channel, passing half-closes through."""

    def __init__(self, local: socket.socket, chan: paramiko.Channel, done: Any) -> None:
        self.local = local
        self.chan = chan
        self._done = done
        self._remaining = 2
        self._lock = threading.Lock()
        self._remote_done = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._upstream, name="rbottle-tunnel-up", daemon=True).start()
        threading.Thread(target=self._downstream, name="rbottle-tunnel-down", daemon=True).start()

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.local.shutdown(socket.SHUT_RDWR)
        _close(self.chan)

    def _upstream(self) -> None:
        """local -> channel; local EOF becomes channel EOF (stdin EOF for exec/attach)."""
        try:
            while True:
                data = self.local.recv(_CHUNK)
                if not data:
                    break
                self.chan.sendall(data)
            self.chan.shutdown_write()
            self._wait_for_hangup()
        except _GONE:
            _close(self.chan)
        finally:
            self._finish()

    def _wait_for_hangup(self) -> None:
        # A half-closed client still reads; a fully closed one cannot, and a stream the
        # server never ends (a silent attach, say) would hold its channel forever: close
        # the channel when the local peer hangs up entirely (POLLHUP), or when the remote
        # side finishes first.
        poller = select.poll()
        poller.register(self.local, select.POLLHUP | select.POLLERR)
        while not self._remote_done.is_set():
            if any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(500)):
                _close(self.chan)
                return

    def _downstream(self) -> None:
        """channel -> local; channel EOF becomes `shutdown(SHUT_WR)` on the local socket."""
        try:
            while True:
                data = self.chan.recv(_CHUNK)
                if not data:
                    break
                self.local.sendall(data)
            self.local.shutdown(socket.SHUT_WR)
        except _GONE:
            _close(self.chan)
        finally:
            self._remote_done.set()
            self._finish()

    def _finish(self) -> None:
        with self._lock:
            self._remaining -= 1
            last = self._remaining == 0
        if last:
            _close(self.chan)
            self.local.close()
            self._done(self)


def _private_dir(name: str) -> Path:
    """A fresh 0700 directory for the socket, owned by us and unreachable by others."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40] or "host"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        base = Path(runtime) / "rbottle"
        with contextlib.suppress(OSError):
            base.mkdir(mode=0o700, exist_ok=True)
            info = base.lstat()
            if (
                stat.S_ISDIR(info.st_mode)
                and info.st_uid == os.getuid()
                and not info.st_mode & 0o077
                and len(str(base)) + len(safe) + 24 < _SUN_PATH_MAX
            ):
                return Path(tempfile.mkdtemp(prefix=f"{safe}.", dir=base))
    return Path(tempfile.mkdtemp(prefix=f"rbottle-{safe}."))


def _close(chan: paramiko.Channel) -> None:
    # Closing sends CHANNEL_CLOSE; on a transport that just died that raises EOFError.
    with contextlib.suppress(*_GONE):
        chan.close()
