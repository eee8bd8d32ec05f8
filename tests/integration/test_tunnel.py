"""The SSH transport and the Docker tunnel against a real sshd and a real nested dockerd."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest
import requests

from remotebottle.backend.docker.streams import exec_with_stdin, raw_socket
from remotebottle.errors import ConnectError
from remotebottle.hosts.resolve import ssh_endpoint
from remotebottle.transport.docker_tunnel import DockerTunnel
from remotebottle.transport.known_hosts import trust
from remotebottle.transport.ssh import SshConnection, SshEndpoint, fetch_host_key
from tests.integration.fakevm import (
    BASE_IMAGE,
    TEST_LABEL,
    FakeVm,
    fakevm,
    generate_ed25519,
    known_hosts_line,
)

__all__ = ["fakevm"]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def conn(fakevm: FakeVm) -> Iterator[SshConnection]:
    with fakevm.connect() as connection:
        yield connection


@pytest.fixture(scope="module")
def tunnel(conn: SshConnection) -> Iterator[DockerTunnel]:
    with DockerTunnel(conn) as forwarded:
        yield forwarded


@pytest.fixture(scope="module")
def remote(tunnel: DockerTunnel) -> Iterator[docker.DockerClient]:
    client = tunnel.client(timeout=60)
    yield client
    client.close()


@pytest.fixture
def container_name() -> str:
    return f"rbt-tunnel-{secrets.token_hex(4)}"


def _remove(client: docker.DockerClient, name: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(name).remove(force=True)


# -- the tunnel --------------------------------------------------------------------------------


def test_ping_through_the_tunnel(
    remote: docker.DockerClient, docker_client: docker.DockerClient
) -> None:
    assert remote.ping()
    # A different engine from the local one: the VM's own.
    assert remote.info()["ID"] != docker_client.info()["ID"]


def test_twenty_concurrent_api_calls(remote: docker.DockerClient) -> None:
    def call(i: int) -> str:
        if i % 2:
            return str(remote.api.version()["ApiVersion"])
        return "ok" if remote.api.ping() else "no"

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(call, range(20)))
    assert len(results) == 20
    assert results.count("ok") == 10
    assert all(r == results[1] for r in results[1::2])


def test_run_a_container_and_read_its_logs(
    remote: docker.DockerClient, docker_client: docker.DockerClient, container_name: str
) -> None:
    try:
        container = remote.containers.run(
            BASE_IMAGE,
            ["sh", "-c", "echo out-line; echo err-line >&2"],
            name=container_name,
            labels={TEST_LABEL: "1"},
            detach=True,
        )
        assert container.wait(timeout=60)["StatusCode"] == 0
        assert container.logs(stdout=True, stderr=False).strip() == b"out-line"
        assert container.logs(stdout=False, stderr=True).strip() == b"err-line"
        # Ran on the VM's engine, not the local one.
        assert not docker_client.containers.list(all=True, filters={"name": container_name})
    finally:
        _remove(remote, container_name)


def test_exec_with_stdin_sees_eof(remote: docker.DockerClient, container_name: str) -> None:
    payload = os.urandom(300_000)
    try:
        container = remote.containers.run(
            BASE_IMAGE, ["sleep", "300"], name=container_name, detach=True
        )
        # `wc -c` only prints once stdin is closed: EOF must cross the tunnel.
        code, out, err = exec_with_stdin(remote, container.id, ["wc", "-c"], payload)
        assert (code, out.strip(), err) == (0, str(len(payload)).encode(), b"")
        code, out, _ = exec_with_stdin(remote, container.id, ["sha256sum"], b"abc")
        assert code == 0
        assert out.startswith(b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    finally:
        _remove(remote, container_name)


def test_attach_to_a_tty_container_round_trips_bytes(
    remote: docker.DockerClient, container_name: str
) -> None:
    try:
        container = remote.containers.create(
            BASE_IMAGE,
            ["sh", "-c", 'stty -echo; while read -r line; do echo "got:$line"; done'],
            name=container_name,
            tty=True,
            stdin_open=True,
            detach=True,
        )
        container.start()
        hijacked = container.attach_socket(
            params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        sock = raw_socket(hijacked)
        sock.settimeout(20)
        try:
            time.sleep(0.5)  # let `stty -echo` run before we type
            sock.sendall(b"hello tunnel\n")
            seen = b""
            while b"got:hello tunnel" not in seen:
                chunk = sock.recv(4096)
                assert chunk, f"stream ended early: {seen!r}"
                seen += chunk
            # Ctrl-D through the TTY: `read` sees end of input, the loop and sh end.
            sock.sendall(b"\x04")
            assert container.wait(timeout=30)["StatusCode"] == 0
        finally:
            hijacked.close()
    finally:
        _remove(remote, container_name)


def test_socket_is_private(tunnel: DockerTunnel) -> None:
    assert stat.S_IMODE(os.stat(tunnel.path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(tunnel.path).st_mode)
    assert stat.S_IMODE(os.stat(tunnel.directory).st_mode) == 0o700
    assert os.stat(tunnel.directory).st_uid == os.getuid()
    assert tunnel.url == f"unix://{tunnel.path}"


def test_docker_cli_works_with_the_url(tunnel: DockerTunnel) -> None:
    out = subprocess.run(
        ["docker", "-H", tunnel.url, "version", "--format", "{{.Server.Version}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip()[0].isdigit()


def test_close_removes_socket_and_directory(conn: SshConnection) -> None:
    tunnel = DockerTunnel(conn, name="closing")
    client = tunnel.client(timeout=30)
    assert client.ping()
    tunnel.close()
    client.close()
    assert not tunnel.path.exists()
    assert not tunnel.directory.exists()
    tunnel.close()  # idempotent
    assert conn.is_active()  # the tunnel does not own the connection


def test_a_missing_remote_socket_closes_the_local_connection(conn: SshConnection) -> None:
    with DockerTunnel(conn, "/nonexistent/docker.sock") as tunnel:
        client = tunnel.client(timeout=10, version="1.41")
        # The channel open is refused, so the local connection is closed under the request.
        with pytest.raises(requests.exceptions.ConnectionError):
            client.ping()
        client.close()


def test_runs_on_the_vm_leave_nothing_on_the_local_engine(
    remote: docker.DockerClient, docker_client: docker.DockerClient, container_name: str
) -> None:
    before = {c.id for c in docker_client.containers.list(all=True)}
    try:
        for i in range(3):
            remote.containers.run(
                BASE_IMAGE, ["true"], name=f"{container_name}-{i}", labels={TEST_LABEL: "1"}
            )
        on_vm = remote.containers.list(all=True, filters={"name": container_name})
        assert len(on_vm) == 3
        local = docker_client.containers.list(all=True, filters={"name": container_name})
        assert not local
        assert not {c.id for c in on_vm} & {c.id for c in docker_client.containers.list(all=True)}
    finally:
        for i in range(3):
            _remove(remote, f"{container_name}-{i}")
    # Other engineers' tests may share this engine: only ours must not be new here.
    new = {c.id for c in docker_client.containers.list(all=True)} - before
    assert not any(container_name in (docker_client.containers.get(i).name or "") for i in new)


# -- the SSH connection against the real sshd -----------------------------------------------------


def test_run_and_sftp(conn: SshConnection) -> None:
    code, out, err = conn.run("id -un; cat; echo done >&2; exit 3", input=b"via-stdin", timeout=20)
    assert (code, out, err) == (3, b"admin\nvia-stdin", b"done\n")
    with conn.sftp() as sftp:
        with sftp.open("/tmp/rbt-sftp-probe", "w") as f:
            f.write(b"sftp-bytes")
        assert conn.run("cat /tmp/rbt-sftp-probe")[1] == b"sftp-bytes"


def test_unknown_host_key_is_refused(fakevm: FakeVm, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(ConnectError) as err:
        SshConnection(ssh_endpoint(fakevm.ssh_host()), name="vm1", known_hosts=empty).connect()
    assert fakevm.host_key.fingerprint in err.value.message
    assert "unknown host key" in err.value.message
    assert err.value.hint.endswith("`rbottle hosts trust vm1`")


def test_changed_host_key_is_refused(fakevm: FakeVm, tmp_path: Path) -> None:
    other = generate_ed25519(tmp_path / "other")
    stale = tmp_path / "known_hosts"
    stale.write_text(known_hosts_line(fakevm.host, fakevm.port, other))
    with pytest.raises(ConnectError) as err:
        SshConnection(ssh_endpoint(fakevm.ssh_host()), name="vm1", known_hosts=stale).connect()
    assert "HOST KEY CHANGED" in err.value.message
    assert "attack" in err.value.message
    assert fakevm.host_key.fingerprint in err.value.message


def test_fetch_and_trust_then_connect(fakevm: FakeVm, tmp_path: Path) -> None:
    key = fetch_host_key(fakevm.host, fakevm.port, timeout=10)
    assert key.asbytes() == fakevm.host_key.asbytes()
    known = trust(fakevm.host, fakevm.port, key, tmp_path / "kh", hashed=True)
    assert known.read_text().startswith("|1|")
    with SshConnection(ssh_endpoint(fakevm.ssh_host()), known_hosts=known) as c:
        assert c.run("echo ok")[1] == b"ok\n"


def test_pinned_key_from_a_provider(fakevm: FakeVm) -> None:
    with SshConnection(ssh_endpoint(fakevm.ssh_host()), expected_host_key=fakevm.host_key) as c:
        assert c.run("true")[0] == 0


def test_ssh_config_and_proxyjump(fakevm: FakeVm, tmp_path: Path) -> None:
    # The VM's sshd jumps to itself: vminner is 127.0.0.1:22 as seen from inside the VM.
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host vmjump\n  HostName {fakevm.host}\n  Port {fakevm.port}\n  User admin\n"
        f"  IdentityFile {fakevm.key_path}\n  IdentitiesOnly yes\n"
        f"Host vminner\n  HostName 127.0.0.1\n  User admin\n  IdentityFile {fakevm.key_path}\n"
        "  ProxyJump vmjump\n"
    )
    known = tmp_path / "known_hosts"
    known.write_text(
        known_hosts_line(fakevm.host, fakevm.port, fakevm.host_key)
        + known_hosts_line("127.0.0.1", 22, fakevm.host_key)
    )
    with SshConnection("vminner", ssh_config=config, known_hosts=known) as c:
        assert c.target.port == 22
        assert c.run("echo $SSH_CONNECTION")[1].split()[0] == b"127.0.0.1"
        with DockerTunnel(c) as tunnel:
            client = tunnel.client(timeout=30)
            assert client.ping()
            client.close()


@pytest.fixture
def ssh_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real ssh-agent of our own (never the user's) on a socket under tmp_path."""
    sock = Path(tempfile.mkdtemp(prefix="rbt-agent-")) / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(sock.parent, ignore_errors=True)


def test_agent_key_with_no_identity_file(fakevm: FakeVm, ssh_agent: Path, tmp_path: Path) -> None:
    # The key lives only in the agent: its file is gone after `ssh-add`.
    key = tmp_path / "agent_only"
    key.write_bytes(fakevm.key_path.read_bytes())
    key.chmod(0o600)
    env = os.environ | {"SSH_AUTH_SOCK": str(ssh_agent)}
    subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, timeout=10)
    key.unlink()
    entry = ssh_endpoint(fakevm.ssh_host(identity_file=None))
    with SshConnection(entry, known_hosts=fakevm.known_hosts) as c:
        assert c.run("echo agent")[1] == b"agent\n"


def test_auth_failure_is_one_clean_line(fakevm: FakeVm, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    generate_ed25519(stranger)
    entry = ssh_endpoint(fakevm.ssh_host(identity_file=str(stranger)))
    with pytest.raises(ConnectError) as err:
        SshConnection(entry, known_hosts=fakevm.known_hosts).connect()
    assert "permission denied for user 'admin'" in err.value.message
    assert "\n" not in err.value.message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_closed_port_is_refused_quickly() -> None:
    entry = SshEndpoint(address="127.0.0.1", port=_closed_port(), connect_timeout=5)
    started = time.monotonic()
    with pytest.raises(ConnectError) as err:
        SshConnection(entry, name="vm1").connect()
    assert time.monotonic() - started < 5
    assert "refused the connection" in err.value.message


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A loopback port that drops SYNs: its accept queue is full and nobody accepts.

    DESIGN §5 allows only loopback as a network target, so this stands in for an
    unroutable address such as 10.255.255.1.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            yield port


def test_blackholed_address_fails_within_the_timeout(blackhole: int) -> None:
    entry = SshEndpoint(address="127.0.0.1", port=blackhole, connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(ConnectError) as err:
        SshConnection(entry, name="vm1").connect()
    elapsed = time.monotonic() - started
    assert 1.9 < elapsed < 3.0
    assert err.value.message == f"vm1 (127.0.0.1:{blackhole}) did not answer within 2s"
