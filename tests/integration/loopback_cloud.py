"""A 'cloud' on loopback: its VMs are fake-VM containers (sshd + dockerd) on the local engine.

`LoopbackProvider` implements the provider interface; its `registry` makes it the provider
of `ec2` hosts, passed to what the test runs (`main(argv, registry)`), so the real engine code
connects with the host key the provider reported, keeps the heartbeat, opens the tunnel,
and destroys the VM at the end.

For `rbottle` run as a process of its own (to kill it), `serve(provider)` puts the cloud's
API on a unix socket and `python -m tests.integration.loopback_cloud ARGS...` is `rbottle
ARGS...` with that cloud as its `ec2` (`CloudService.env()` says where). The VMs stay the
test's, whatever happens to the processes that asked for them.

With `deadman_seconds`, each VM runs the dead-man check of the real user-data (its TTL in
seconds instead of minutes, checked each second instead of each minute) and powers itself
off when the heartbeat is older; the cloud then terminates it, as EC2 does with
`InstanceInitiatedShutdownBehavior=terminate` (`reap`, which the service runs each second).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import secrets
import sys
import tempfile
import threading
from collections.abc import Iterator
from importlib import resources
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import yaml

from remotebottle.errors import ProvisionError
from remotebottle.hosts.provider import Machine, OwnedResource, Progress, Provider
from remotebottle.hosts.registry import DEFAULT, Registry
from tests.integration.fakevm import (
    BASE_IMAGE,
    FAKEVM_IMAGE,
    FakeVm,
    generate_ed25519,
    skip_unless_image,
    start_fakevm,
)

# What cloud-init's tmpfiles entry does on a real VM: the login user renews the heartbeat.
HEARTBEAT_DIR = (
    "install -d -o admin -g admin /run/rbottle"
    " && install -o admin -g admin -m 0644 /dev/null /run/rbottle/heartbeat"
)
DEADMAN = "/usr/local/sbin/rbottle-deadman"
# systemd's power-off on a fake VM: its PID 1 (tini) ends, and the container stops.
SYSTEMCTL_SHIM = '#!/bin/sh\n[ "$1" = poweroff ] && exec kill -TERM 1\n'
ENV_ADDRESS = "RB_LOOPBACK_CLOUD"
ENV_KEY = "RB_LOOPBACK_CLOUD_KEY"
REPO = Path(__file__).resolve().parents[2]


class LoopbackProvider(Provider):
    """A 'cloud' whose VMs are fake-VM containers on the local engine."""

    name = "loopback"

    def __init__(
        self,
        client: docker.DockerClient,
        workdir: Path,
        *,
        lie: bool = False,
        deadman_seconds: int | None = None,
    ) -> None:
        self.client = client
        self.workdir = workdir
        self.lie = lie  # report a host key that is not the VM's
        self.deadman_seconds = deadman_seconds  # None: no dead-man check on the VMs
        self.vms: dict[str, tuple[FakeVm, contextlib.ExitStack]] = {}
        self.created: dict[str, datetime.datetime] = {}
        self.destroyed: list[str] = []
        self.powered_off: list[str] = []  # VMs terminated after their dead-man check fired
        self.adopted: dict[str, str] = {}
        self.renewed = 0
        self.lock = threading.RLock()  # the service calls from threads of its own

    @property
    def registry(self) -> Registry:
        """The real providers, with this one making the VMs of `ec2` hosts."""
        return DEFAULT.with_cloud("ec2", lambda _entry: self)

    def preflight(self) -> dict[str, str]:
        return {"provider": self.name}

    def create(self, identity: str, *, progress: Progress) -> Machine:
        with self.lock:
            if identity not in self.vms:
                stack = contextlib.ExitStack()
                vm = stack.enter_context(
                    start_fakevm(self.client, self.workdir / identity, load_images=(BASE_IMAGE,))
                )
                assert vm.sh(HEARTBEAT_DIR, user="root")[0] == 0
                if self.deadman_seconds is not None:
                    arm_deadman(vm, self.deadman_seconds)
                self.vms[identity] = (vm, stack)
                self.created[identity] = datetime.datetime.now(datetime.UTC)
            vm, _ = self.vms[identity]
        host_key = vm.host_key
        if self.lie:
            host_key = generate_ed25519(self.workdir / "impostor")
        return Machine(
            provider=self.name,
            machine_id=vm.name,
            identity=identity,
            address=vm.host,
            port=vm.port,
            user=vm.user,
            host_key=f"{host_key.get_name()} {host_key.get_base64()}",
            login_key=vm.key_path.read_text(),
        )

    def destroy(self, machine: Machine, *, progress: Progress) -> None:
        with self.lock:
            self._terminate(machine.identity)

    def _terminate(self, identity: str) -> str | None:
        found = self.vms.pop(identity, None)
        if found is None:
            return None
        vm, stack = found
        stack.close()
        self.destroyed.append(vm.name)
        return vm.name

    def reap(self) -> None:
        """Terminate the VMs that powered themselves off."""
        with self.lock:
            for identity, (vm, _) in list(self.vms.items()):
                try:
                    vm.container.reload()
                    running = vm.container.status == "running"
                except docker.errors.NotFound:
                    running = False
                if not running and (name := self._terminate(identity)):
                    self.powered_off.append(name)

    def adopt_login_key(self, identity: str, login_key: str) -> None:
        self.adopted[identity] = login_key

    def renew_expiry(self, machine: Machine) -> None:
        self.renewed += 1

    def list_owned(self) -> list[OwnedResource]:
        with self.lock:
            return [
                OwnedResource(
                    self.name,
                    "instance",
                    vm.name,
                    identity,
                    self.created[identity],
                    None,
                    "running",
                )
                for identity, (vm, _) in self.vms.items()
            ]

    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        with self.lock:
            names = {r.resource_id for r in resources}
            for identity, (vm, _) in list(self.vms.items()):
                if vm.name in names:
                    self._terminate(identity)


def deadman_script(ttl_seconds: int) -> str:
    """The user-data's dead-man check, with a TTL of `ttl_seconds`."""
    text = resources.files("remotebottle").joinpath("resources/cloud-init/user-data.yaml")
    files = yaml.safe_load(text.read_text())["write_files"]
    script = str(next(f["content"] for f in files if f["path"] == DEADMAN))
    minutes = "$(( {{ttl_minutes}} * 60 ))"
    assert minutes in script, "the dead-man script counts its TTL otherwise now"
    return script.replace(minutes, str(ttl_seconds))


def arm_deadman(vm: FakeVm, ttl_seconds: int) -> None:
    for path, content in (
        (DEADMAN, deadman_script(ttl_seconds)),
        ("/usr/local/bin/systemctl", SYSTEMCTL_SHIM),
    ):
        install = f"cat > {path} <<'EOF'\n{content}EOF\nchmod 0755 {path}"
        assert vm.sh(install, user="root")[0] == 0
    # What rbottle-deadman.timer does each minute, each second.
    vm.container.exec_run(
        ["sh", "-c", f"while sleep 1; do {DEADMAN} >/dev/null 2>&1; done"], user="root", detach=True
    )


# -- the cloud's API for other processes ---------------------------------------------------

CALLS = frozenset(
    {
        "preflight",
        "create",
        "destroy",
        "renew_expiry",
        "adopt_login_key",
        "list_owned",
        "destroy_owned",
    }
)
WITH_PROGRESS = frozenset({"create", "destroy", "destroy_owned"})


class CloudService:
    """`provider` answering on a unix socket; also terminates the VMs that powered off."""

    def __init__(self, provider: LoopbackProvider) -> None:
        self.provider = provider
        # A short path: unix socket addresses are limited to about 100 bytes.
        self.directory = Path(tempfile.mkdtemp(prefix="rbcloud"))
        self.address = str(self.directory / "api.sock")
        self.authkey = secrets.token_bytes(16)
        self.listener = Listener(self.address, family="AF_UNIX", authkey=self.authkey)
        self.stopped = threading.Event()
        self.threads = [
            threading.Thread(target=self._serve, daemon=True),
            threading.Thread(target=self._reap, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def env(self) -> dict[str, str]:
        """What `python -m tests.integration.loopback_cloud` needs to find this cloud."""
        return {ENV_ADDRESS: self.address, ENV_KEY: self.authkey.hex(), "PYTHONPATH": str(REPO)}

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn = self.listener.accept()
            except (OSError, EOFError):
                continue  # closed (we are stopping), or a caller without the key
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: Connection) -> None:
        with conn:
            method, args = conn.recv()
            if method not in CALLS:
                conn.send(("error", f"no such call: {method}"))
                return
            kwargs: dict[str, Any] = (
                {"progress": lambda _m: None} if method in WITH_PROGRESS else {}
            )
            try:
                conn.send(("ok", getattr(self.provider, method)(*args, **kwargs)))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))

    def _reap(self) -> None:
        while not self.stopped.wait(1.0):
            with contextlib.suppress(Exception):  # the next round tries again
                self.provider.reap()

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=10)
        with contextlib.suppress(OSError):
            os.unlink(self.address)
            self.directory.rmdir()


@contextlib.contextmanager
def serve(provider: LoopbackProvider) -> Iterator[CloudService]:
    service = CloudService(provider)
    try:
        yield service
    finally:
        service.close()


class LoopbackClient(Provider):
    """The loopback cloud as another process sees it: each call goes to its `CloudService`."""

    name = "loopback"

    def __init__(self, address: str, authkey: bytes) -> None:
        self.address = address
        self.authkey = authkey

    def _call(self, method: str, *args: Any) -> Any:
        with Client(self.address, family="AF_UNIX", authkey=self.authkey) as conn:
            conn.send((method, args))
            kind, value = conn.recv()
        if kind == "error":
            raise ProvisionError(f"the loopback cloud: {value}")
        return value

    def preflight(self) -> dict[str, str]:
        answer: dict[str, str] = self._call("preflight")
        return answer

    def create(self, identity: str, *, progress: Progress) -> Machine:
        progress(f"loopback: creating a VM for {identity}")
        machine: Machine = self._call("create", identity)
        return machine

    def destroy(self, machine: Machine, *, progress: Progress) -> None:
        self._call("destroy", machine)

    def renew_expiry(self, machine: Machine) -> None:
        self._call("renew_expiry", machine)

    def adopt_login_key(self, identity: str, login_key: str) -> None:
        self._call("adopt_login_key", identity, login_key)

    def list_owned(self) -> list[OwnedResource]:
        owned: list[OwnedResource] = self._call("list_owned")
        return owned

    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        self._call("destroy_owned", resources)


def run_rbottle(argv: list[str]) -> int:
    """`rbottle ARGV` with the loopback cloud of the environment as its `ec2`."""
    from remotebottle.cli import main

    client = LoopbackClient(os.environ[ENV_ADDRESS], bytes.fromhex(os.environ[ENV_KEY]))
    return main(argv, DEFAULT.with_cloud("ec2", lambda _entry: client))


@pytest.fixture
def loopback(
    docker_client: docker.DockerClient, tmp_path: Path, isolated_home: Path
) -> Iterator[LoopbackProvider]:
    skip_unless_image(docker_client, FAKEVM_IMAGE)
    provider = LoopbackProvider(docker_client, tmp_path / "vms")
    try:
        yield provider
    finally:
        for _, stack in provider.vms.values():
            stack.close()


if __name__ == "__main__":
    sys.exit(run_rbottle(sys.argv[1:]))
