"""VMs made per session, with a fake VM on loopback standing in for the cloud's.

`LoopbackProvider` implements the provider interface by starting a fake VM container
(sshd + dockerd); the real engine code then connects with the host key the provider
reported, keeps the dead-man heartbeat, opens the tunnel, and destroys the VM at the end.
The dead-man script is the one cloud-init installs on real VMs, run in a fake VM.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import docker
import docker.errors
import pytest
import yaml

from remotebottle import state
from remotebottle.errors import ConnectError
from remotebottle.hosts import cloud
from remotebottle.hosts.engine import open_engine
from remotebottle.hosts.provider import Machine, OwnedResource, Progress, Provider
from remotebottle.hosts.resolve import HostTarget
from remotebottle.manifest import Ec2Host
from tests.integration.fakevm import (
    BASE_IMAGE,
    FAKEVM_BARE_IMAGE,
    FAKEVM_IMAGE,
    FakeVm,
    generate_ed25519,
    skip_unless_image,
    start_fakevm,
)

pytestmark = pytest.mark.integration

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
    cloud.PROVIDER_OVERRIDES["ec2"] = lambda _host: provider
    try:
        yield provider
    finally:
        cloud.PROVIDER_OVERRIDES.pop("ec2", None)
        for _, stack in provider.vms.values():
            stack.close()


def exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.containers.get(name)
    except docker.errors.NotFound:
        return False
    return True


def test_a_session_vm_is_made_reached_by_its_reported_key_and_destroyed(
    loopback: LoopbackProvider, docker_client: docker.DockerClient, isolated_home: Path
) -> None:
    host = HostTarget("cloudy", Ec2Host(provider="ec2"))
    with open_engine(
        host, progress=lambda _m: None, consent=lambda _q: False, session="w-abcde"
    ) as engine:
        assert engine.remote is not None and engine.remote.machine is not None
        name = engine.remote.machine.machine_id
        vm, _ = loopback.vms["w-abcde"]
        # The VM's engine answers through the tunnel, and the heartbeat was renewed.
        assert engine.client.containers.run(BASE_IMAGE, ["echo", "on the vm"], remove=True) == (
            b"on the vm\n"
        )
        code, age = vm.sh("echo $(( $(date +%s) - $(stat -c %Y /run/rbottle/heartbeat) ))")
        assert code == 0 and int(age) < 30
    assert loopback.destroyed == [name]
    assert not exists(docker_client, name)
    # The key was taken from the provider, never written to known_hosts (no TOFU).
    assert not (isolated_home / ".ssh" / "known_hosts").exists()


def test_a_reused_vm_outlives_the_session_and_its_key_waits_in_a_private_file(
    loopback: LoopbackProvider, isolated_home: Path
) -> None:
    host = HostTarget("kept", Ec2Host(provider="ec2", reuse=True))
    for session in ("w-first", "w-second"):
        with open_engine(
            host, progress=lambda _m: None, consent=lambda _q: False, session=session
        ) as engine:
            assert engine.client.ping()
    assert list(loopback.vms) == ["reuse-kept"], "one VM, kept, found again"
    assert loopback.destroyed == []
    kept = state.home() / "hosts" / "kept" / "login_key"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert loopback.adopted == {"reuse-kept": kept.read_text()}
    assert loopback.renewed >= 2, "each session's first heartbeat renews the expiry"


def test_a_host_key_other_than_the_reported_one_is_refused_and_the_vm_still_goes(
    loopback: LoopbackProvider, docker_client: docker.DockerClient
) -> None:
    loopback.lie = True
    host = HostTarget("cloudy", Ec2Host(provider="ec2"))
    with (
        pytest.raises(ConnectError, match="HOST KEY MISMATCH"),
        open_engine(host, progress=lambda _m: None, consent=lambda _q: False, session="w-fghij"),
    ):
        pass
    assert len(loopback.destroyed) == 1
    assert not exists(docker_client, loopback.destroyed[0])


def test_without_a_session_a_cloud_host_is_not_a_machine_to_ask() -> None:
    host = HostTarget("cloudy", Ec2Host(provider="ec2"))
    with (
        pytest.raises(Exception, match="makes a new VM for each session"),
        open_engine(host, progress=lambda _m: None, consent=lambda _q: False),
    ):
        pass


# -- the dead-man timer -------------------------------------------------------------------


def deadman_script(ttl_minutes: int) -> str:
    text = resources.files("remotebottle").joinpath("resources/cloud-init/user-data.yaml")
    data = yaml.safe_load(text.read_text())
    script = next(
        f["content"] for f in data["write_files"] if f["path"] == "/usr/local/sbin/rbottle-deadman"
    )
    return str(script).replace("{{ttl_minutes}}", str(ttl_minutes))


# Stands in for systemd on the fake VM: records the power-off instead of doing it.
SYSTEMCTL_SHIM = '#!/bin/sh\necho "$@" >> /var/log/poweroff-requests\n'


@pytest.fixture
def deadman_vm(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[FakeVm]:
    skip_unless_image(docker_client, FAKEVM_BARE_IMAGE)
    with start_fakevm(docker_client, tmp_path / "vm", image=FAKEVM_BARE_IMAGE) as vm:
        for path, content in (
            ("/usr/local/sbin/rbottle-deadman", deadman_script(ttl_minutes=1)),
            ("/usr/local/bin/systemctl", SYSTEMCTL_SHIM),
        ):
            install = f"cat > {path} <<'EOF'\n{content}EOF\nchmod 0755 {path}"
            assert vm.sh(install, user="root")[0] == 0
        assert vm.sh(HEARTBEAT_DIR, user="root")[0] == 0
        yield vm


def fires(vm: FakeVm) -> bool:
    """Run one dead-man check (what the timer does each minute); did it power off?"""
    code, out = vm.sh("/usr/local/sbin/rbottle-deadman", user="root")
    assert code == 0, out
    return vm.sh("cat /var/log/poweroff-requests", user="root")[1].strip() == "poweroff"


def age_heartbeat(vm: FakeVm, minutes: int) -> None:
    assert vm.sh(f"touch -d '-{minutes} min' /run/rbottle/heartbeat", user="root")[0] == 0


def test_the_dead_man_timer_powers_off_a_vm_whose_client_went_silent(
    deadman_vm: FakeVm,
) -> None:
    with deadman_vm.connect() as conn:
        cloud.Heartbeat(conn).beat()
    assert not fires(deadman_vm), "powered off despite a fresh heartbeat"
    age_heartbeat(deadman_vm, 2)
    assert fires(deadman_vm), "a heartbeat older than the TTL must power the VM off"


def test_the_heartbeat_keeps_the_vm_alive_while_the_session_lives(deadman_vm: FakeVm) -> None:
    with deadman_vm.connect() as conn, cloud.Heartbeat(conn, interval=0.3):
        age_heartbeat(deadman_vm, 2)
        time.sleep(1.5)  # a few renewals
        assert not fires(deadman_vm), "the heartbeat was not renewed"
