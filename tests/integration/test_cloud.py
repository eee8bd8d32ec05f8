"""VMs made per session, with a fake VM on loopback standing in for the cloud's
(`tests/integration/loopback_cloud.py`). The dead-man script is the one cloud-init
installs on real VMs, run in a fake VM.
"""

from __future__ import annotations

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
from remotebottle.hosts.resolve import HostTarget
from remotebottle.manifest import Ec2Host
from tests.integration.fakevm import (
    BASE_IMAGE,
    FAKEVM_BARE_IMAGE,
    FakeVm,
    skip_unless_image,
    start_fakevm,
)
from tests.integration.loopback_cloud import HEARTBEAT_DIR, LoopbackProvider, loopback

__all__ = ["loopback"]

pytestmark = pytest.mark.integration


def exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.containers.get(name)
    except docker.errors.NotFound:
        return False
    return True


def test_a_session_vm_is_made_reached_by_its_reported_key_and_destroyed(
    loopback: LoopbackProvider, docker_client: docker.DockerClient, isolated_home: Path
) -> None:
    host = HostTarget("cloudy", Ec2Host(provider="ec2"), loopback.registry)
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
    host = HostTarget("kept", Ec2Host(provider="ec2", reuse=True), loopback.registry)
    for session in ("w-one11", "w-two22"):
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
    host = HostTarget("cloudy", Ec2Host(provider="ec2"), loopback.registry)
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


def heartbeat_age(vm: FakeVm) -> int:
    code, age = vm.sh("echo $(( $(date +%s) - $(stat -c %Y /run/rbottle/heartbeat) ))")
    assert code == 0, age
    return int(age)


def test_a_beat_lost_to_a_cut_is_tried_again_soon_not_an_interval_later(
    deadman_vm: FakeVm,
) -> None:
    """The link watch closes the connection when the network goes and `reconnect` opens
    the same one again: the beat that fell in between comes right after, not a whole
    interval later (which a TTL of a little more than one interval would not survive)."""
    with deadman_vm.connect() as conn, cloud.Heartbeat(conn, interval=4.0, retry=0.2):
        conn.close()  # the cut, as the link watch handles it
        age_heartbeat(deadman_vm, 2)
        time.sleep(5.0)  # the beat due at 4 s found no connection
        assert heartbeat_age(deadman_vm) >= 120, "renewed without a connection?"
        conn.connect()  # the link is back
        time.sleep(1.0)  # well before the next interval (8 s)
        assert heartbeat_age(deadman_vm) <= 2, "the missed beat was not tried again"
        assert not fires(deadman_vm)


def test_renew_soon_beats_at_once(deadman_vm: FakeVm) -> None:
    with deadman_vm.connect() as conn, cloud.Heartbeat(conn) as heartbeat:  # 60 s interval
        age_heartbeat(deadman_vm, 2)
        heartbeat.renew_soon()
        time.sleep(1.0)
        assert heartbeat_age(deadman_vm) <= 2, "not renewed at once"
