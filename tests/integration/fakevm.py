"""Fake VMs for remote-host tests: an sshd + dockerd container on the local engine.

`start_fakevm()` runs `rbottle-test/fakevm:latest` (or the bare variant) with the flags in
`tests/harness/FAKEVM.md`, sshd published on 127.0.0.1 with an ephemeral port, a fresh
ed25519 client key and a temporary known_hosts file holding the VM's real host key. It
waits for sshd (banner) and the nested dockerd (`docker info` as `admin`), optionally loads
images from the local engine into the nested one, and removes the container with its
volumes afterwards. Everything it creates carries the label `io.remotebottle.test=1`.

The fake VMs run Debian 13 with its docker.io (26.1.5) and gVisor's runsc, as VMs rbottle
provisions or creates do. `FakeVm.engine_version()` / `engine_runtimes()` say what the
nested engine is, for tests to log or check; `start_fakevm` logs it (logger
`tests.fakevm`). `RB_TEST_FAKEVM_IMAGE` / `RB_TEST_FAKEVM_BARE_IMAGE` run other tags
(a fake VM being tried out, built with setup.sh's `RB_HARNESS_FAKEVM_*`).

The `fakevm` fixture (session-scoped, `debian:bookworm-slim` loaded) is importable:

    from tests.integration.fakevm import fakevm
    __all__ = ["fakevm"]
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from docker.models.containers import Container

from remotebottle.backend.docker.streams import raw_socket
from remotebottle.hosts.resolve import ssh_endpoint
from remotebottle.manifest import SshHost
from remotebottle.transport.ssh import SshConnection

FAKEVM_IMAGE = os.environ.get("RB_TEST_FAKEVM_IMAGE") or "rbottle-test/fakevm:latest"
FAKEVM_BARE_IMAGE = os.environ.get("RB_TEST_FAKEVM_BARE_IMAGE") or "rbottle-test/fakevm-bare:latest"
# The bare VM on Debian 12, whose docker.io (20.10) provisioning must refuse.
FAKEVM_OLD_BARE_IMAGE = "rbottle-test/fakevm-bare:bookworm"
TEST_LABEL = "io.remotebottle.test"
BASE_IMAGE = "debian:bookworm-slim"
USER = "admin"

log = logging.getLogger("tests.fakevm")


@dataclass
class FakeVm:
    """A running fake VM and what it takes to log in to it."""

    container: Container
    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    host_key: paramiko.PKey

    @property
    def name(self) -> str:
        return str(self.container.name)

    def ssh_host(self, **overrides: Any) -> SshHost:
        """A hosts entry for this VM (overrides go to `SshHost`)."""
        fields: dict[str, Any] = {
            "provider": "ssh",
            "address": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.key_path),
            "connect_timeout": 10.0,
        }
        return SshHost(**(fields | overrides))

    def hosts_entry(self, **overrides: Any) -> dict[str, Any]:
        """This VM's hosts entry as claude-bottle.json spells it."""
        return self.ssh_host(**overrides).model_dump(mode="json", exclude_none=True)

    def connect(self, **kwargs: Any) -> SshConnection:
        """A connected `SshConnection` trusting this VM's key (kwargs go to the constructor)."""
        kwargs.setdefault("known_hosts", self.known_hosts)
        kwargs.setdefault("name", "fakevm")
        return SshConnection(ssh_endpoint(self.ssh_host()), **kwargs).connect()

    def sh(self, command: str, user: str = USER) -> tuple[int, str]:
        """Run a shell command in the VM with `docker exec` (not over SSH)."""
        code, out = self.container.exec_run(["sh", "-c", command], user=user)
        return int(code), out.decode(errors="replace")

    def engine_version(self) -> str:
        """The nested engine's `docker version` server version ("26.1.5+dfsg1"), or ""
        when no engine answers (a bare VM before provisioning)."""
        code, out = self.sh("docker version --format '{{.Server.Version}}' 2>/dev/null", "root")
        return out.strip() if code == 0 else ""

    def engine_runtimes(self) -> dict[str, list[str]]:
        """The nested engine's runtimes and their arguments ({"runc": [], "runsc":
        ["--network=host"]}), {} when no engine answers."""
        code, out = self.sh("docker info --format '{{json .Runtimes}}' 2>/dev/null", "root")
        if code != 0:
            return {}
        described: dict[str, dict[str, Any]] = json.loads(out)
        return {name: list(r.get("runtimeArgs") or []) for name, r in described.items()}


def generate_ed25519(path: Path) -> paramiko.PKey:
    """Write a fresh unencrypted ed25519 key pair (`path`, `path.pub`) and return the key."""
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    path.with_name(path.name + ".pub").write_text(f"{key.get_name()} {key.get_base64()} test\n")
    return key


def known_hosts_line(host: str, port: int, key: paramiko.PKey) -> str:
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key.get_name()} {key.get_base64()}\n"


@contextlib.contextmanager
def start_fakevm(
    client: docker.DockerClient,
    workdir: Path,
    *,
    image: str = FAKEVM_IMAGE,
    load_images: tuple[str, ...] = (),
    timeout: float = 120.0,
) -> Iterator[FakeVm]:
    """Run a fake VM until the block ends, then remove it and its volumes."""
    workdir.mkdir(parents=True, exist_ok=True)
    key_path = workdir / "id_ed25519"
    client_key = generate_ed25519(key_path)
    run_args: dict[str, Any] = {}
    if str(client.info().get("CgroupVersion")) == "2":
        run_args["cgroupns"] = "private"
    container = client.containers.run(
        image,
        detach=True,
        name=f"rbt-vm-{secrets.token_hex(4)}",
        cap_add=["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        ports={"22/tcp": ("127.0.0.1",)},
        environment={
            "FAKEVM_AUTHORIZED_KEYS": f"{client_key.get_name()} {client_key.get_base64()}"
        },
        labels={TEST_LABEL: "1"},
        **run_args,
    )
    try:
        deadline = time.monotonic() + timeout
        container.reload()
        port = int(container.ports["22/tcp"][0]["HostPort"])
        host_key = _read_host_key(container, deadline)
        known_hosts = workdir / "known_hosts"
        known_hosts.write_text(known_hosts_line("127.0.0.1", port, host_key))
        vm = FakeVm(container, "127.0.0.1", port, USER, key_path, known_hosts, host_key)
        wait_for_ssh(vm.host, vm.port, deadline)
        if image == FAKEVM_IMAGE:
            _wait_for_dockerd(vm, deadline)
            log.info(
                "%s (%s): Docker Engine %s, runtimes %s",
                vm.name,
                image,
                vm.engine_version(),
                vm.engine_runtimes(),
            )
        for ref in load_images:
            load_image(client, vm, ref)
        yield vm
    finally:
        # Its own engine's data (GBs of images) goes with it: that can take a while.
        timeout, client.api.timeout = client.api.timeout, 600
        try:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container.id, force=True, v=True)
        finally:
            client.api.timeout = timeout


def _read_host_key(container: Container, deadline: float) -> paramiko.PKey:
    while True:
        code, out = container.exec_run(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
        fields = out.decode(errors="replace").split()
        if code == 0 and len(fields) >= 2:
            return paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1]))
        if time.monotonic() > deadline:
            raise TimeoutError(f"{container.name}: no host key: {out!r}")
        time.sleep(0.2)


def wait_for_ssh(host: str, port: int, deadline: float) -> None:
    """Until sshd itself answers (the port proxy accepts before sshd is up)."""
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
                last = "no SSH banner"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise TimeoutError(f"sshd on {host}:{port} did not answer: {last}")


def _wait_for_dockerd(vm: FakeVm, deadline: float) -> None:
    out = ""
    while time.monotonic() < deadline:
        code, out = vm.sh("docker info --format '{{.ServerVersion}}'")
        if code == 0:
            return
        time.sleep(0.5)
    _, log = vm.sh("tail -n 20 /var/log/dockerd.log", user="root")
    raise TimeoutError(f"{vm.name}: the nested dockerd did not start: {out}\n{log}")


LOAD_TIMEOUT = 600.0  # seconds


def load_image(client: docker.DockerClient, vm: FakeVm, ref: str) -> None:
    """`docker save ref | docker exec -i vm docker load`, streamed through docker-py."""
    api = client.api
    exec_id = api.exec_create(vm.container.id, ["docker", "load", "-q"], stdin=True, user=USER)
    hijacked = api.exec_start(exec_id["Id"], socket=True)
    sock = raw_socket(hijacked)
    # `docker load` answers only once the whole image is in: on a loaded machine that can
    # take longer than the client's usual timeout.
    sock.settimeout(LOAD_TIMEOUT)
    try:
        for chunk in client.images.get(ref).save(chunk_size=1024 * 1024, named=True):
            sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    finally:
        hijacked.close()
    code = api.exec_inspect(exec_id["Id"])["ExitCode"]
    if code != 0:
        raise RuntimeError(f"loading {ref} into {vm.name} failed (exit {code})")


def skip_unless_image(client: docker.DockerClient, image: str) -> None:
    from tests.integration.conftest import require

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        require(f"{image} is not on the engine; run tests/harness/setup.sh (`make setup`)")


@pytest.fixture(scope="session")
def fakevm(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeVm]:
    """A fake VM with its own engine, `debian:bookworm-slim` loaded; shared by the session."""
    skip_unless_image(docker_client, FAKEVM_IMAGE)
    skip_unless_image(docker_client, BASE_IMAGE)
    with start_fakevm(
        docker_client, tmp_path_factory.mktemp("fakevm"), load_images=(BASE_IMAGE,)
    ) as vm:
        yield vm
