"""`rbottle start AGENT --host <cloud host>`, the whole command, on a VM made for the session.

The cloud is the loopback provider (a fake VM per session, `loopback_cloud.py`): what
runs is the CLI as a user runs it, from the preflight to the VM's destruction. A watcher
thread looks at the VM while the session lives (and joins it the way `rbottle dashboard`
does), then lets the bottle end.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import pytest

from remotebottle import state
from remotebottle.backend.docker import labels as L
from remotebottle.cli import main
from remotebottle.hosts import session_vm
from remotebottle.hosts.resolve import resolve_host
from remotebottle.manifest import load
from remotebottle.ops.listing import list_bottles
from remotebottle.supervise.source import open_sources
from tests.e2e.conftest import owned
from tests.e2e.vmparts import grep_vm_disk
from tests.integration.fakevm import FakeVm
from tests.integration.loopback_cloud import LoopbackProvider, loopback

__all__ = ["loopback"]

pytestmark = pytest.mark.e2e

PROBE = """
printf %s "$GRANTED" | sha256sum | cut -c1-64
i=0
while [ ! -e /tmp/go ] && [ $i -lt 1200 ]; do sleep 0.25; i=$((i+1)); done
exit 6
"""


class Watcher(threading.Thread):
    """Waits for the session's VM and its running bottle, records what it sees, and
    then lets the bottle's command end."""

    def __init__(
        self, cloud: LoopbackProvider, local: docker.DockerClient, secret: str, manifest: Path
    ) -> None:
        super().__init__(daemon=True)
        self.cloud, self.local, self.secret, self.manifest = cloud, local, secret, manifest
        self.local_before = set(owned(local))
        self.seen: dict[str, object] = {}

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            vms = [vm for vm, _ in list(self.cloud.vms.values())]
            agent = self.agent(vms[0]) if vms else None
            if agent is not None:
                try:
                    self._look(vms[0])
                except Exception as exc:  # shown by the test's assertion on `seen`
                    self.seen["error"] = repr(exc)
                finally:
                    vms[0].sh(f"docker exec {agent} touch /tmp/go")
                return
            time.sleep(0.5)

    def _look(self, vm: FakeVm) -> None:
        self.seen["on the vm"] = True
        self.seen["local engine untouched"] = set(owned(self.local)) == self.local_before
        self.seen["secret on the vm's disk"] = grep_vm_disk(vm, self.secret)
        self.seen["the dashboard's view"] = self._dashboard_view()
        manifest = load([self.manifest])
        listed = list_bottles(
            manifest,
            resolve_host("cloudy", manifest, self.cloud.registry),
            progress=print,
            registry=self.cloud.registry,
        )
        self.seen["rbottle list --host cloudy"] = [(b.identity, b.status) for b in listed]
        [identity] = state.known_identities()
        record = state.state_dir(identity) / session_vm.RECORD
        self.seen["vm record mode"] = oct(record.stat().st_mode & 0o777)

    def _dashboard_view(self) -> tuple[list[tuple[str, str]], dict[str, str]]:
        """What `rbottle dashboard` reaches from this machine while the session lives."""
        with open_sources(
            load([self.manifest]), progress=lambda _m: None, registry=self.cloud.registry
        ) as sources:
            return sources.bottles(), sources.unreachable

    @staticmethod
    def agent(vm: FakeVm) -> str | None:
        try:
            _, ids = vm.sh(f"docker ps -q --filter label={L.ROLE}={L.ROLE_AGENT}")
        except docker.errors.APIError:  # the VM is still starting or already going
            return None
        for cid in ids.split():
            if vm.sh(f"docker exec {cid} pgrep -f tmp/go")[0] == 0:
                return cid
        return None


def test_start_on_a_cloud_host_runs_the_bottle_on_its_vm_and_destroys_the_vm(
    loopback: LoopbackProvider,
    docker_client: docker.DockerClient,
    agent_image: str,
    write_manifest: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret = f"sk-cloud-{secrets.token_hex(16)}"
    manifest = write_manifest(
        {
            "bottles": {"sealed": {"egress": {"enabled": False}, "env": {"GRANTED": "${RB_S}"}}},
            "agents": {"worker": {"bottle": "sealed"}},
            "hosts": {"cloudy": {"provider": "ec2", "region": "eu-west-1"}},
        }
    )
    monkeypatch.chdir(manifest.parent)
    monkeypatch.setenv("RB_S", secret)
    watcher = Watcher(loopback, docker_client, secret, manifest)
    watcher.start()

    code = main(
        ["start", "worker", "--host", "cloudy", "--yes", "--", "sh", "-c", PROBE], loopback.registry
    )

    watcher.join(timeout=30)
    out, err = capfd.readouterr()
    assert code == 6, err
    [identity] = state.known_identities()
    [vm_name] = loopback.destroyed
    assert watcher.seen == {
        "on the vm": True,
        "local engine untouched": True,
        "secret on the vm's disk": "",
        "the dashboard's view": ([(identity, f"cloudy/{vm_name}")], {}),
        "rbottle list --host cloudy": [(identity, "running")],
        "vm record mode": "0o600",
    }, err
    assert hashlib.sha256(secret.encode()).hexdigest() in out.split()
    assert not loopback.vms, "the session's VM must go"
    assert not (state.state_dir(identity) / session_vm.RECORD).exists()
    assert "destroying the VM" in err
    assert secret not in out + err

    # `resume` starts the bottle again on a new VM of the same host, and that goes too.
    code = main(["resume", identity, "--yes", "--", "sh", "-c", "exit 7"], loopback.registry)
    _, err = capfd.readouterr()
    assert code == 7, err
    assert len(loopback.destroyed) == 2 and not loopback.vms


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_mid_session_still_destroys_the_vm(
    loopback: LoopbackProvider,
    agent_image: str,
    write_manifest: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    sig: signal.Signals,
) -> None:
    manifest = write_manifest(
        {
            "bottles": {"sealed": {"egress": {"enabled": False}}},
            "agents": {"worker": {"bottle": "sealed"}},
            "hosts": {"cloudy": {"provider": "ec2"}},
        }
    )
    monkeypatch.chdir(manifest.parent)

    def interrupt_once_the_bottle_runs() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            vms = [vm for vm, _ in list(loopback.vms.values())]
            if vms and Watcher.agent(vms[0]) is not None:
                os.kill(os.getpid(), sig)  # what Ctrl-C or `kill` does to rbottle
                return
            time.sleep(0.5)

    threading.Thread(target=interrupt_once_the_bottle_runs, daemon=True).start()
    code = main(
        ["start", "worker", "--host", "cloudy", "--yes", "--", "sh", "-c", PROBE], loopback.registry
    )

    _, err = capfd.readouterr()
    assert code == 130, err
    assert len(loopback.destroyed) == 1 and not loopback.vms, "the VM must go on an interrupt"
    [identity] = state.known_identities()
    assert not (state.state_dir(identity) / session_vm.RECORD).exists()
    assert "Traceback" not in err
