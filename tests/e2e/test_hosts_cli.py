"""`rbottle hosts trust` and `rbottle env` as a user runs them, against a fake VM.

The VM (sshd + its own dockerd) is reached only over SSH; each test starts with an empty
~/.ssh/known_hosts in its isolated HOME, so the host key is unknown until trusted.
"""

from __future__ import annotations

import json
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.conftest import finish
from tests.e2e.conftest import rbottle as run_rbottle
from tests.integration.fakevm import FakeVm, fakevm, generate_ed25519, known_hosts_line

__all__ = ["fakevm"]

pytestmark = pytest.mark.e2e


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A short private XDG_RUNTIME_DIR, so that the tunnel's socket lands where we can see it."""
    path = Path(tempfile.mkdtemp(prefix="rbt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def project(fakevm: FakeVm, write_manifest: Callable[..., Path], isolated_home: Path) -> Path:
    return write_manifest({"hosts": {"vm": fakevm.hosts_entry()}}).parent


@pytest.fixture
def known_hosts(isolated_home: Path) -> Path:
    return isolated_home / ".ssh" / "known_hosts"


def rbottle(project: Path, *args: str, runtime: Path | None = None) -> subprocess.Popen[str]:
    return run_rbottle(project, *args, env={"XDG_RUNTIME_DIR": str(runtime)} if runtime else None)


def first_line(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    """The first line on stdout, or "" if the command ended (or the time ran out) first."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return ""
    return proc.stdout.readline()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_clean_error(err: str) -> None:
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err


def open_env(project: Path, runtime: Path) -> tuple[subprocess.Popen[str], str]:
    """`rbottle env vm` running, and the socket path from the line it printed."""
    proc = rbottle(project, "env", "vm", runtime=runtime)
    line = first_line(proc)
    if not line:
        proc.kill()
        _, _, err = finish(proc)
        raise AssertionError(f"rbottle env printed nothing: {err}")
    assert line.startswith("export DOCKER_HOST=unix://"), line
    assert line.endswith("\n") and line.count("\n") == 1
    return proc, line.strip().removeprefix("export DOCKER_HOST=")


def stop(proc: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    """Send `sig` and wait for the end (killing it if it does not end)."""
    try:
        proc.send_signal(sig)
        return finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def env_until(project: Path, runtime: Path, sig: int) -> tuple[int, str, str]:
    """Run `rbottle env vm`, reach the VM's engine through it, then send `sig`.

    Returns:
        (exit status, stderr, the DOCKER_HOST URL it printed)
    """
    proc, url = open_env(project, runtime)
    try:
        ping(url)
    finally:
        code, _, err = stop(proc, sig)
    return code, err, url


def ping(url: str) -> Any:
    client = docker.DockerClient(base_url=url, version="auto", timeout=30)
    try:
        assert client.ping()
        return client.info()
    finally:
        client.close()


def test_trust_records_the_key_and_env_then_tunnels(
    fakevm: FakeVm,
    project: Path,
    known_hosts: Path,
    runtime_dir: Path,
    docker_client: docker.DockerClient,
) -> None:
    code, out, err = finish(rbottle(project, "hosts", "--format=json"))
    assert code == 0, err
    assert {r["name"]: r["host_key"] for r in json.loads(out)}["vm"] == "unknown"

    code, _, err = finish(rbottle(project, "hosts", "trust", "vm", "--yes"))
    assert code == 0, err
    assert fakevm.host_key.fingerprint in err
    assert fakevm.host_key.fingerprint.startswith("SHA256:")
    assert str(known_hosts) in err
    assert known_hosts.read_text() == known_hosts_line(fakevm.host, fakevm.port, fakevm.host_key)

    code, _, err = finish(rbottle(project, "hosts", "trust", "vm", "--yes"))
    assert code == 0, err
    assert "already trusted" in err
    assert known_hosts.read_text().count("\n") == 1

    code, out, _ = finish(rbottle(project, "hosts", "--format=json"))
    assert {r["name"]: r["host_key"] for r in json.loads(out)}["vm"] == "known"

    proc, url = open_env(project, runtime_dir)
    socket_path = Path(url.removeprefix("unix://"))
    try:
        assert socket_path.is_relative_to(runtime_dir / "rbottle")
        assert ping(url)["ID"] != docker_client.info()["ID"]  # the VM's engine, not ours
        assert proc.poll() is None
    finally:
        code, out, err = stop(proc, signal.SIGINT)
    assert code == 0, err
    assert out == ""  # the one line was read already
    assert "Traceback" not in err
    assert not socket_path.parent.exists()
    assert list((runtime_dir / "rbottle").iterdir()) == []


def test_trust_hashes_the_name_when_ssh_config_says_so(
    fakevm: FakeVm, project: Path, known_hosts: Path, isolated_home: Path, runtime_dir: Path
) -> None:
    known_hosts.parent.mkdir(mode=0o700, exist_ok=True)
    (isolated_home / ".ssh" / "config").write_text("Host *\n    HashKnownHosts yes\n")
    code, _, err = finish(rbottle(project, "hosts", "trust", "vm", "--yes"))
    assert code == 0, err
    assert "as a hashed entry" in err
    name, key_type, blob = known_hosts.read_text().split()
    assert name.startswith("|1|") and str(fakevm.port) not in name
    assert (key_type, blob) == (fakevm.host_key.get_name(), fakevm.host_key.get_base64())

    code, err, _ = env_until(project, runtime_dir, signal.SIGINT)
    assert code == 0, err


def test_env_closes_cleanly_on_sigterm(
    fakevm: FakeVm, project: Path, known_hosts: Path, runtime_dir: Path
) -> None:
    known_hosts.parent.mkdir(mode=0o700, exist_ok=True)
    known_hosts.write_text(fakevm.known_hosts.read_text())
    code, err, url = env_until(project, runtime_dir, signal.SIGTERM)
    assert code == 0, err
    assert "Traceback" not in err
    assert not Path(url.removeprefix("unix://")).parent.exists()


def test_unknown_host_key_is_refused_with_the_fingerprint(
    fakevm: FakeVm, project: Path, known_hosts: Path, runtime_dir: Path
) -> None:
    code, out, err = finish(rbottle(project, "env", "vm", runtime=runtime_dir))
    assert code != 0
    assert out == ""
    assert_clean_error(err)
    assert "unknown host key" in err
    assert fakevm.host_key.fingerprint in err
    assert "rbottle hosts trust vm" in err
    assert not known_hosts.exists()
    assert not (runtime_dir / "rbottle").exists() or not any((runtime_dir / "rbottle").iterdir())

    # Without --yes and with no terminal to ask on, trust records nothing.
    code, _, err = finish(rbottle(project, "hosts", "trust", "vm"))
    assert code == 2
    assert_clean_error(err)
    assert fakevm.host_key.fingerprint in err
    assert "no terminal" in err and "--yes" in err
    assert not known_hosts.exists()


def test_changed_host_key_is_refused_and_never_overwritten(
    fakevm: FakeVm, project: Path, known_hosts: Path, tmp_path: Path
) -> None:
    impostor = generate_ed25519(tmp_path / "impostor")
    known_hosts.parent.mkdir(mode=0o700, exist_ok=True)
    known_hosts.write_text(known_hosts_line(fakevm.host, fakevm.port, impostor))
    before = known_hosts.read_bytes()

    code, _, err = finish(rbottle(project, "env", "vm"))
    assert code != 0
    assert_clean_error(err)
    assert "HOST KEY CHANGED" in err
    assert fakevm.host_key.fingerprint in err

    code, _, err = finish(rbottle(project, "hosts", "trust", "vm", "--yes"))
    assert code != 0
    assert_clean_error(err)
    assert "HOST KEY CHANGED" in err
    assert fakevm.host_key.fingerprint in err
    assert f"ssh-keygen -R '[{fakevm.host}]:{fakevm.port}'" in err
    assert known_hosts.read_bytes() == before


def test_unreachable_host_fails_fast_with_one_line(
    write_manifest: Callable[..., Path], fakevm: FakeVm
) -> None:
    entry = fakevm.hosts_entry(port=closed_port(), connect_timeout=5)
    project = write_manifest({"hosts": {"gone": entry}}).parent
    for args in (("env", "gone"), ("hosts", "trust", "gone", "--yes")):
        started = time.monotonic()
        code, out, err = finish(rbottle(project, *args), timeout=30)
        assert time.monotonic() - started < 5 + 10  # the timeout plus interpreter start-up
        assert code == 1, err
        assert out == ""
        assert_clean_error(err)
        assert "refused the connection" in err
        assert "hint:" in err
