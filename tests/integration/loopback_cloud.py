"""A 'cloud' on loopback: its VMs are fake-VM containers (sshd + dockerd) on the local engine.

`LoopbackProvider` implements the provider interface; its `registry` makes it the provider
of `ec2` hosts, passed to what the test runs (`main(argv, registry)`), so the real engine code
connects with the host key the provider reported, keeps the heartbeat, opens the tunnel,
and destroys the VM at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

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


class LoopbackProvider(Provider):
    """A 'cloud' whose VMs are fake-VM containers on the local engine."""

    name = "loopback"

    def __init__(self, client: docker.DockerClient, workdir: Path, *, lie: bool = False) -> None:
        self.client = client
        self.workdir = workdir
        self.lie = lie  # report a host key that is not the VM's
        self.vms: dict[str, tuple[FakeVm, contextlib.ExitStack]] = {}
        self.destroyed: list[str] = []
        self.adopted: dict[str, str] = {}
        self.renewed = 0

    @property
    def registry(self) -> Registry:
        """The real providers, with this one making the VMs of `ec2` hosts."""
        return DEFAULT.with_cloud("ec2", lambda _entry: self)

    def preflight(self) -> dict[str, str]:
        return {"provider": self.name}

    def create(self, identity: str, *, progress: Progress) -> Machine:
        if identity not in self.vms:
            stack = contextlib.ExitStack()
            vm = stack.enter_context(
                start_fakevm(self.client, self.workdir / identity, load_images=(BASE_IMAGE,))
            )
            assert vm.sh(HEARTBEAT_DIR, user="root")[0] == 0
            self.vms[identity] = (vm, stack)
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
        _, stack = self.vms.pop(machine.identity)
        stack.close()
        self.destroyed.append(machine.machine_id)

    def adopt_login_key(self, identity: str, login_key: str) -> None:
        self.adopted[identity] = login_key

    def renew_expiry(self, machine: Machine) -> None:
        self.renewed += 1

    def list_owned(self) -> list[OwnedResource]:
        return []

    def destroy_owned(self, resources: list[OwnedResource], *, progress: Progress) -> None:
        raise AssertionError("not used here")


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
