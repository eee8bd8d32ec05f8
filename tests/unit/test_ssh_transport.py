"""SshConnection and DockerTunnel against an in-process paramiko server on loopback.

No engine, no network beyond 127.0.0.1. The server speaks `direct-streamlocal@openssh.com`
(it records the fields of each open and echoes the stream back after EOF), `exec`, and
public-key auth for one user and one key.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.message import Message

from remotebottle.errors import ConnectError, HostError
from remotebottle.transport.docker_tunnel import DockerTunnel
from remotebottle.transport.handshake import STREAMLOCAL
from remotebottle.transport.known_hosts import trust
from remotebottle.transport.ssh import (
    SshConnection,
    SshEndpoint,
    fetch_host_key,
    resolve_target,
)

pytestmark = pytest.mark.unit


def make_key(path: Path) -> paramiko.PKey:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    path.with_name(path.name + ".pub").write_text(f"{key.get_name()} {key.get_base64()}\n")
    return key


class _ServerTransport(paramiko.Transport):
    """Records the type-specific fields of each direct-streamlocal open, as OpenSSH parses them."""

    opened: list[tuple[str, str, int, bytes]]

    def _parse_channel_open(self, m: Message) -> None:
        peek = Message(m.asbytes())
        if peek.get_text() == STREAMLOCAL:
            peek.get_int(), peek.get_int(), peek.get_int()
            self.opened.append(
                (peek.get_text(), peek.get_text(), peek.get_int(), peek.get_remainder())
            )
        super()._parse_channel_open(m)  # type: ignore[misc]


class _Server(paramiko.ServerInterface):
    def __init__(self, authorized: paramiko.PKey) -> None:
        self.authorized = authorized
        self.kinds: dict[int, str] = {}

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "admin" and key.asbytes() == self.authorized.asbytes()
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        self.kinds[chanid] = kind
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=_exec, args=(channel, command.decode()), daemon=True).start()
        return True


def _exec(chan: paramiko.Channel, command: str) -> None:
    # Exit status then EOF, and no close: the client closes, so a close can never overtake
    # the server's reply to the exec request.
    if command == "cat":
        while data := chan.recv(65536):
            chan.sendall(data)
    elif command == "fail":
        chan.sendall_stderr(b"boom\n")
    else:  # "hang"
        return
    chan.send_exit_status(7 if command == "fail" else 0)
    chan.shutdown_write()


def _echo_after_eof(chan: paramiko.Channel) -> None:
    """Read to EOF, then answer: proves the client's half-close arrived and reads still work."""
    data = b""
    while chunk := chan.recv(65536):
        data += chunk
    chan.sendall(b"echo:" + data)
    chan.close()


@dataclass
class FakeSshd:
    port: int
    host_key: paramiko.PKey
    client_key_path: Path
    transports: list[_ServerTransport] = field(default_factory=list)
    opened: list[tuple[str, str, int, bytes]] = field(default_factory=list)

    def entry(self, **overrides: Any) -> SshEndpoint:
        fields: dict[str, Any] = {
            "address": "127.0.0.1",
            "port": self.port,
            "user": "admin",
            "identity_file": str(self.client_key_path),
            "connect_timeout": 3.0,
        }
        return SshEndpoint(**(fields | overrides))

    def known_hosts(self, path: Path, key: paramiko.PKey | None = None) -> Path:
        key = key or self.host_key
        path.write_text(f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n")
        return path


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSshd]:
    keys = tmp_path_factory.mktemp("sshd")
    host_key = make_key(keys / "host")
    client_key = make_key(keys / "client")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    server = FakeSshd(int(listener.getsockname()[1]), host_key, keys / "client")

    def serve_one(sock: socket.socket) -> None:
        transport = _ServerTransport(sock)
        transport.opened = server.opened
        transport.add_server_key(host_key)
        iface = _Server(client_key)
        server.transports.append(transport)
        with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
            transport.start_server(server=iface)
        while transport.is_active():
            chan = transport.accept(timeout=0.2)
            if chan is not None and iface.kinds.get(chan.get_id()) == STREAMLOCAL:
                threading.Thread(target=_echo_after_eof, args=(chan,), daemon=True).start()

    def accept_loop() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(sock,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    yield server
    listener.close()
    for transport in server.transports:
        transport.close()


@pytest.fixture
def known(sshd: FakeSshd, tmp_path: Path) -> Path:
    return sshd.known_hosts(tmp_path / "known_hosts")


@pytest.fixture
def conn(sshd: FakeSshd, known: Path) -> Iterator[SshConnection]:
    with SshConnection(sshd.entry(), name="vm1", known_hosts=known) as connection:
        yield connection


# -- host keys -------------------------------------------------------------------------------


def test_known_host_key_connects(conn: SshConnection) -> None:
    assert conn.is_active()
    assert conn.run("cat", input=b"hello", timeout=5) == (0, b"hello", b"")
    assert conn.run("fail", timeout=5) == (7, b"", b"boom\n")


def test_unknown_host_key_is_refused_with_its_fingerprint(sshd: FakeSshd, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(ConnectError) as err:
        SshConnection(sshd.entry(), name="vm1", known_hosts=empty).connect()
    fingerprint = sshd.host_key.fingerprint
    assert err.value.message == (
        f"vm1 (127.0.0.1:{sshd.port}): unknown host key (ssh-ed25519 key {fingerprint})"
    )
    assert err.value.hint.endswith("`rbottle hosts trust vm1`")


def test_changed_host_key_is_refused_loudly(sshd: FakeSshd, tmp_path: Path) -> None:
    stale = sshd.known_hosts(tmp_path / "kh", make_key(tmp_path / "old"))
    with pytest.raises(ConnectError) as err:
        SshConnection(sshd.entry(), name="vm1", known_hosts=stale).connect()
    assert "HOST KEY CHANGED" in err.value.message
    assert "may be an attack" in err.value.message
    assert f"{stale}:1" in err.value.message
    assert sshd.host_key.fingerprint in err.value.message


def test_revoked_host_key_is_refused(sshd: FakeSshd, known: Path) -> None:
    key = sshd.host_key
    with known.open("a") as f:
        f.write(f"@revoked * {key.get_name()} {key.get_base64()}\n")
    with pytest.raises(ConnectError, match="@revoked"):
        SshConnection(sshd.entry(), known_hosts=known).connect()


def test_pinned_key_is_accepted_without_known_hosts(sshd: FakeSshd) -> None:
    with SshConnection(sshd.entry(), expected_host_key=sshd.host_key) as c:
        assert c.run("cat", input=b"x")[1] == b"x"


def test_pinned_key_mismatch_is_refused(sshd: FakeSshd, known: Path, tmp_path: Path) -> None:
    other = make_key(tmp_path / "other")
    # A pin wins over known_hosts: a machine we created must present exactly its key.
    with pytest.raises(ConnectError, match="HOST KEY MISMATCH") as err:
        SshConnection(sshd.entry(), known_hosts=known, expected_host_key=other).connect()
    assert "destroy it" in err.value.hint


def test_trust_writes_hashed_entries_and_replaces_the_old_key(
    sshd: FakeSshd, tmp_path: Path
) -> None:
    path = tmp_path / "ssh" / "known_hosts"
    trust("127.0.0.1", sshd.port, make_key(tmp_path / "old"), path)
    trust("example.test", 22, sshd.host_key, path)
    trust("127.0.0.1", sshd.port, sshd.host_key, path, hashed=True)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("example.test ssh-ed25519 ")
    assert lines[1].startswith("|1|")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with SshConnection(sshd.entry(), known_hosts=path) as c:
        assert c.is_active()


def test_fetch_host_key_then_trust(sshd: FakeSshd, tmp_path: Path) -> None:
    key = fetch_host_key("127.0.0.1", sshd.port, timeout=3)
    assert key.asbytes() == sshd.host_key.asbytes()
    path = trust("127.0.0.1", sshd.port, key, tmp_path / "kh")
    assert path.read_text() == f"[127.0.0.1]:{sshd.port} ssh-ed25519 {key.get_base64()}\n"
    with SshConnection(sshd.entry(), known_hosts=path) as c:
        assert c.is_active()


# -- failures --------------------------------------------------------------------------------


def test_auth_failure_is_one_line_with_a_hint(sshd: FakeSshd, tmp_path: Path, known: Path) -> None:
    make_key(tmp_path / "stranger")
    entry = sshd.entry(identity_file=str(tmp_path / "stranger"))
    with pytest.raises(ConnectError) as err:
        SshConnection(entry, name="vm1", known_hosts=known).connect()
    assert err.value.message == (
        f"vm1 (127.0.0.1:{sshd.port}): permission denied for user 'admin'"
        f" (tried {tmp_path / 'stranger'})"
    )
    assert "authorized_keys" in err.value.hint


def test_missing_identity_file_is_named(sshd: FakeSshd, known: Path) -> None:
    entry = sshd.entry(identity_file="/nonexistent/id_ed25519")
    with pytest.raises(ConnectError, match="identity_file /nonexistent/id_ed25519 does not"):
        SshConnection(entry, known_hosts=known).connect()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Listening, accepting (in the kernel), never saying a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """Drops SYNs: the accept queue is full and nobody accepts."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            yield port


@pytest.mark.parametrize("where", ["silent_port", "blackhole_port"])
def test_connect_timeout_is_kept(where: str, request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue(where)
    entry = SshEndpoint(address="127.0.0.1", port=port, connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ConnectError) as err:
        SshConnection(entry, name="vm1").connect()
    assert 0.45 < time.monotonic() - started < 1.2
    assert err.value.message == f"vm1 (127.0.0.1:{port}) did not answer within 0.5s"


def test_refused_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with pytest.raises(ConnectError) as err:
        SshConnection(SshEndpoint(address="127.0.0.1", port=port)).connect()
    assert err.value.message == f"127.0.0.1:{port} refused the connection on port {port}"
    assert "sshd" in err.value.hint


def test_unresolvable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*_: Any, **__: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(ConnectError) as err:
        SshConnection(SshEndpoint(address="vm1.example.test"), name="vm1").connect()
    assert "cannot resolve host name 'vm1.example.test'" in err.value.message
    assert err.value.hint


def test_run_timeout(conn: SshConnection) -> None:
    with pytest.raises(HostError, match=r"`hang` did not finish within 0\.3s"):
        conn.run("hang", timeout=0.3)
    assert conn.is_active()


def test_stream_hands_on_each_line_with_stderr_merged(conn: SshConnection) -> None:
    lines: list[str] = []
    status = conn.stream("cat", input=b"one\r\ntwo\n\nlast", on_line=lines.append, timeout=5)
    assert (status, lines) == (0, ["one", "two", "", "last"])
    lines.clear()
    assert conn.stream("fail", input=b"", on_line=lines.append, timeout=5) == 7
    assert lines == ["boom"]


def test_stream_timeout(conn: SshConnection) -> None:
    with pytest.raises(HostError, match=r"`hang` did not finish within 0\.3s"):
        conn.stream("hang", input=b"", on_line=lambda _: None, timeout=0.3)
    assert conn.is_active()


def test_stream_on_a_lost_connection_is_a_connect_error(conn: SshConnection) -> None:
    conn.transport.close()
    with pytest.raises(ConnectError, match="not connected"):
        conn.stream("cat", input=b"", on_line=lambda _: None, timeout=5)


def test_keepalive_tolerates_missed_beats(conn: SshConnection) -> None:
    sock = conn.transport.sock
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 60_000


# -- direct-streamlocal and the tunnel -------------------------------------------------------


def test_unix_channel_open_carries_path_and_reserved_fields(
    conn: SshConnection, sshd: FakeSshd
) -> None:
    before = len(sshd.opened)
    chan = conn.open_unix_channel("/var/run/docker.sock")
    chan.sendall(b"ping")
    chan.shutdown_write()
    assert chan.makefile("rb").read() == b"echo:ping"
    chan.close()
    assert sshd.opened[before:] == [("/var/run/docker.sock", "", 0, b"")]
    # Plain channels are untouched by the hook.
    assert conn.run("cat", input=b"still fine")[1] == b"still fine"


def _roundtrip(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_tunnel_is_private_passes_half_close_and_cleans_up(conn: SshConnection) -> None:
    with DockerTunnel(conn, name="vm1") as tunnel:
        assert stat.S_IMODE(os.stat(tunnel.path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tunnel.directory).st_mode) == 0o700
        big = os.urandom(3 * 1024 * 1024)
        assert _roundtrip(tunnel.path, big) == b"echo:" + big
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda i: _roundtrip(tunnel.path, b"%d" % i), range(20)))
        assert answers == [b"echo:%d" % i for i in range(20)]
    assert not tunnel.path.exists()
    assert not tunnel.directory.exists()
    deadline = time.monotonic() + 2
    while tunnel.active_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tunnel.active_streams == 0


def test_tunnel_survives_a_reconnect(sshd: FakeSshd, known: Path) -> None:
    first = SshConnection(sshd.entry(), known_hosts=known).connect()
    with DockerTunnel(first) as tunnel:
        assert _roundtrip(tunnel.path, b"1") == b"echo:1"
        first.close()
        try:  # the local connection is closed under us (reset, or plain EOF)
            lost = _roundtrip(tunnel.path, b"lost")
        except ConnectionError:
            lost = b""
        assert lost == b""
        with SshConnection(sshd.entry(), known_hosts=known) as second:
            tunnel.replace_connection(second)
            assert _roundtrip(tunnel.path, b"2") == b"echo:2"


def test_tunnel_needs_a_live_connection(sshd: FakeSshd, known: Path) -> None:
    with pytest.raises(ConnectError, match="not connected"):
        DockerTunnel(SshConnection(sshd.entry(), known_hosts=known))


def test_tunnel_uses_xdg_runtime_dir(
    conn: SshConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short path, like /run/user/1000: unix socket paths are limited to ~100 bytes.
    runtime = Path(tempfile.mkdtemp(prefix="xdg", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with DockerTunnel(conn, name="vm 1/../x") as tunnel:
        assert tunnel.directory.parent == runtime / "rbottle"
        assert tunnel.directory.name.startswith("vm_1_.._x.")
        assert _roundtrip(tunnel.path, b"hi") == b"echo:hi"
    assert not (runtime / "rbottle" / tunnel.directory.name).exists()
    shutil.rmtree(runtime)


# -- settings --------------------------------------------------------------------------------


def test_ssh_config_fills_in_and_the_entry_wins(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        "Host vm1\n  HostName 10.0.0.5\n  Port 2200\n  User ops\n  IdentityFile ~/.ssh/vm1\n"
        "  IdentitiesOnly yes\n  ProxyJump bastion\n  UserKnownHostsFile ~/kh\n"
        "Host *\n  User fallback\n"
    )
    target = resolve_target("vm1", ssh_config=config, known_hosts=tmp_path / "extra")
    assert (target.hostname, target.port, target.user) == ("10.0.0.5", 2200, "ops")
    assert target.identity_files == (os.path.expanduser("~/.ssh/vm1"),)
    assert target.identities_only
    assert target.proxy_jump == "bastion"
    assert target.known_hosts_name == "[10.0.0.5]:2200"
    assert target.known_hosts_files[0] == os.path.expanduser("~/kh")
    assert target.known_hosts_files[-1] == str(tmp_path / "extra")
    entry = SshEndpoint(address="vm1", port=22, user="admin", identity_file="/k", connect_timeout=5)
    target = resolve_target(entry, ssh_config=config)
    assert (target.hostname, target.port, target.user) == ("10.0.0.5", 22, "admin")
    assert target.identity_files == ("/k",)
    assert target.known_hosts_name == "10.0.0.5"
    assert target.label == "vm1 (10.0.0.5:22)"


@pytest.mark.parametrize("jump", ["admin@bastion:0", "bastion:70000"])
def test_a_proxyjump_port_out_of_range_is_one_clean_line(jump: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(f"Host vm1\n  ProxyJump {jump}\n")
    with pytest.raises(ConnectError) as err:
        SshConnection("vm1", ssh_config=config).connect()
    assert err.value.message == f"vm1:22: cannot parse ProxyJump {jump!r}"
