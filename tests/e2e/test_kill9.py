"""kill -9 of `rbottle` mid-session, on the local engine, a reused SSH host and a cloud VM.

Each case runs the CLI as a process of its own and kills it with SIGKILL once the bottle
runs, twice. The first time, `rbottle list` must show the bottle running and `rbottle
attach` must take the session over: it shows what the bottle printed after the kill (so
it is the same container, still running), and ends it with its exit status. The second
time nobody attaches: `rbottle cleanup --orphans` (local engine, SSH host) or the VM's
dead-man timer (cloud) must remove it. After each, what is left of it is counted: it
must be nothing. The figures go to `tests/figures.py` for docs/reliability.md.

The SSH host is the shared fake VM (`fakevm`), reused by every session. The cloud is the
loopback one (`loopback_cloud.py`), served to the CLI's processes; its VMs run the
user-data's dead-man check with a TTL of seconds instead of minutes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from remotebottle import state
from remotebottle.backend.docker import labels as L
from remotebottle.hosts import session_vm
from tests.e2e.conftest import owned
from tests.e2e.vmparts import grep_vm_disk, vm, vm_owned
from tests.figures import record
from tests.integration.fakevm import FakeVm, fakevm
from tests.integration.loopback_cloud import LoopbackProvider, loopback, serve

__all__ = ["fakevm", "loopback", "vm"]

pytestmark = pytest.mark.e2e

# Prints once it runs, and once more when the test says it killed rbottle (so what
# `attach` shows of it was printed after the kill); ends with status 5 when told to.
BOTTLE = """
echo "up on $(hostname)"
touch /tmp/up
while [ ! -e /tmp/go ]; do
    if [ -e /tmp/killed ] && [ ! -e /tmp/answered ]; then
        echo "after the kill"
        touch /tmp/answered
    fi
    sleep 0.2
done
echo "bye"
exit 5
"""
MANIFEST = {
    "bottles": {"sealed": {"egress": {"enabled": False}}},
    "agents": {"worker": {"bottle": "sealed"}},
}
CLOUD_TTL = 90  # seconds: the heartbeat comes every 60


class Place:
    """Where the bottle runs: how to run rbottle for it, and how the test looks there."""

    label = "local engine"
    host: tuple[str, ...] = ()

    def __init__(self, project: Path, local: docker.DockerClient) -> None:
        self.project = project
        self.local = local
        self.local_before = set(owned(local))

    def rbottle(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "remotebottle", *args],
            cwd=self.project,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def engine_sh(self, command: str) -> tuple[int, str]:
        """`command` in a shell whose `docker` talks to the bottle's engine."""
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout

    def left(self) -> list[str]:
        """Everything of ours still there, on the bottle's engine and the local one."""
        return sorted(set(owned(self.local)) - self.local_before)

    def in_agent(self, identity: str, script: str) -> int:
        agent = (
            f"$(docker ps -q --filter label={L.IDENTITY}={identity}"
            f" --filter label={L.ROLE}={L.ROLE_AGENT})"
        )
        return self.engine_sh(f"docker exec {agent} sh -c {shlex.quote(script)}")[0]


class SshPlace(Place):
    label = "reused SSH host"
    host = ("--host", "vm")

    def __init__(self, project: Path, local: docker.DockerClient, vm: FakeVm) -> None:
        super().__init__(project, local)
        self.vm = vm

    def engine_sh(self, command: str) -> tuple[int, str]:
        return self.vm.sh(command)

    def left(self) -> list[str]:
        return [*super().left(), *vm_owned(self.vm)]


class CloudPlace(Place):
    label = "cloud VM"
    host = ("--host", "cloudy")

    def __init__(
        self,
        project: Path,
        local: docker.DockerClient,
        cloud: LoopbackProvider,
        env: dict[str, str],
    ) -> None:
        super().__init__(project, local)
        self.cloud = cloud
        self.env = env

    def rbottle(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.integration.loopback_cloud", *args],
            cwd=self.project,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def the_vm(self) -> FakeVm:
        [(vm, _)] = list(self.cloud.vms.values())
        return vm

    def engine_sh(self, command: str) -> tuple[int, str]:
        with self.cloud.lock:
            vms = [vm for vm, _ in self.cloud.vms.values()]
        return vms[0].sh(command) if vms else (1, "")

    def left(self) -> list[str]:
        with self.cloud.lock:
            vms = [f"vm {vm.name}" for vm, _ in self.cloud.vms.values()]
        names = {c.name for c in self.local.containers.list(all=True)}
        lingering = [f"container {n}" for n in self.cloud.destroyed if n in names]
        return [*super().left(), *vms, *lingering]


class Output:
    """A process's output, read as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(stream, lines), daemon=True)
            for stream, lines in ((proc.stdout, self.out), (proc.stderr, self.err))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.out):
            ended = self.proc.poll() is not None and not self._open()
            if ended or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never came: {self.text()}")
            time.sleep(0.05)

    def _open(self) -> bool:
        return any(reader.is_alive() for reader in self.readers)

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return code

    def text(self) -> str:
        return "".join(self.out) + "".join(self.err)


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll `check` until it holds; the seconds that took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.25)
    return time.monotonic() - started


def start_and_kill(place: Place, timeout: float = 600) -> tuple[str, float]:
    """Start the bottle, SIGKILL rbottle once the bottle's command runs, and tell the bottle
    (so that it prints once more); its identity, and when rbottle was killed."""
    before = set(state.known_identities())
    proc = place.rbottle("start", "worker", *place.host, "--yes", "--", "sh", "-c", BOTTLE)
    output = Output(proc)
    identity = ""

    def running() -> bool:
        nonlocal identity
        if proc.poll() is not None:
            output.finish(10)
            raise AssertionError(f"rbottle ended early ({proc.returncode}): {output.text()}")
        fresh = sorted(set(state.known_identities()) - before)
        identity = fresh[0] if fresh else ""
        return bool(identity) and place.in_agent(identity, "test -e /tmp/up") == 0

    wait_for("the bottle runs", running, timeout)
    proc.kill()  # SIGKILL: nothing of rbottle runs after this
    killed_at = time.monotonic()
    output.finish(30)
    assert "Traceback" not in output.text()
    assert place.in_agent(identity, "touch /tmp/killed") == 0, "the bottle went with rbottle"
    try:
        wait_for("the bottle printed after the kill", lambda: answered(place, identity), 30)
    except AssertionError as exc:
        agents = f"docker ps -aq --filter label={L.IDENTITY}={identity} --filter label={L.ROLE}"
        _, seen = place.engine_sh(
            f"docker ps -a; for c in $({agents}={L.ROLE_AGENT}); do docker logs $c 2>&1;"
            " docker inspect -f '{{json .State}}' $c; done"
        )
        raise AssertionError(f"{exc}\n{output.text()}\n{seen}") from None
    return identity, killed_at


def answered(place: Place, identity: str) -> bool:
    return place.in_agent(identity, "test -e /tmp/answered") == 0


def listed(place: Place) -> dict[str, str]:
    output = Output(place.rbottle("list", "--format=json"))
    code = output.finish(180)
    assert code == 0, output.text()
    return {b["identity"]: b["status"] for b in json.loads("".join(output.out))}


@dataclass(frozen=True)
class Reattached:
    identity: str
    attach_s: float  # from `rbottle attach` to the bottle's output on the terminal again
    since_kill_s: float


def attach_after_kill(place: Place, look: Callable[[str], None]) -> Reattached:
    """Case (b): killed, then listed and attached; the same bottle, ended cleanly."""
    identity, killed_at = start_and_kill(place)
    look(identity)
    assert listed(place).get(identity) == "running"

    started = time.monotonic()
    attach = Output(place.rbottle("attach", identity))
    attach.wait_for("after the kill", timeout=180)  # printed after the kill: the same bottle
    reattached = time.monotonic()
    assert place.in_agent(identity, "touch /tmp/go") == 0
    code = attach.finish(180)
    assert code == 5, attach.text()
    assert "".join(attach.out).split("\n")[:3] == [f"up on {identity}", "after the kill", "bye"]
    assert "Traceback" not in attach.text()
    meta = state.read_metadata(identity)
    assert meta.phase == "ended" and meta.ended_at, meta
    return Reattached(identity, reattached - started, reattached - killed_at)


def count_left(place: Place) -> list[str]:
    """What is left once things settle (a removal may still be under way for a moment)."""
    deadline = time.monotonic() + 15
    while (left := place.left()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def check_attach_case(place: Place, look: Callable[[str], None] = lambda _identity: None) -> None:
    """Case (b), with `look` at the session once rbottle was killed."""
    back = attach_after_kill(place, look)
    left = count_left(place)
    record(
        f"kill -9, {place.label}: attach",
        done="rbottle killed with SIGKILL mid-session (`-- CMD`)",
        seen="`rbottle list`: running; `rbottle attach`: the bottle's output, what it"
        " printed after the kill included, then its exit status",
        lost="nothing" if not left else f"{len(left)} resources left",
        recover_s=back.attach_s,
        since_kill_s=round(back.since_kill_s, 1),
        left=len(left),
    )
    assert not left, f"left after the attached session ended: {left}"
    assert not (state.state_dir(back.identity) / session_vm.RECORD).exists()
    assert not (state.state_dir(back.identity) / session_vm.LOGIN_KEY).exists()


def check_orphan_sweep(place: Place) -> None:
    """Case (c), local engine or SSH host: nobody attaches; `cleanup --orphans` ends it."""
    identity, _ = start_and_kill(place)
    started = time.monotonic()
    sweep = Output(place.rbottle("cleanup", "--orphans", "--yes"))
    code = sweep.finish(300)
    took = time.monotonic() - started
    assert code == 0, sweep.text()
    assert f"bottle {identity}" in sweep.text() and "ended 1 bottles" in sweep.text()
    left = count_left(place)
    record(
        f"kill -9, {place.label}: nobody attaches",
        done="rbottle killed with SIGKILL mid-session; then `rbottle cleanup --orphans --yes`",
        seen="the bottle listed as one whose rbottle is gone, ended (transcript saved), removed",
        lost="nothing" if not left else f"{len(left)} resources left",
        recover_s=took,
        left=len(left),
    )
    assert not left, f"left after cleanup --orphans: {left}"
    meta = state.read_metadata(identity)
    assert meta.phase == "ended" and meta.ended_at, meta


@pytest.fixture
def project(write_manifest: Callable[..., Path]) -> Callable[[Mapping[str, object]], Path]:
    def make(hosts: Mapping[str, object]) -> Path:
        return write_manifest({**MANIFEST, "hosts": hosts}).parent

    return make


def test_kill9_on_the_local_engine(
    project: Callable[[Mapping[str, object]], Path],
    docker_client: docker.DockerClient,
    agent_image: str,
) -> None:
    place = Place(project({}), docker_client)
    check_attach_case(place)
    check_orphan_sweep(place)


def test_kill9_on_a_reused_ssh_host(
    project: Callable[[Mapping[str, object]], Path],
    docker_client: docker.DockerClient,
    agent_image: str,
    vm: FakeVm,
) -> None:
    place = SshPlace(project({"vm": vm.hosts_entry()}), docker_client, vm)
    check_attach_case(place)
    check_orphan_sweep(place)


def test_kill9_on_a_cloud_vm(
    project: Callable[[Mapping[str, object]], Path],
    docker_client: docker.DockerClient,
    agent_image: str,
    loopback: LoopbackProvider,
) -> None:
    hosts = {"cloudy": {"provider": "ec2", "region": "eu-west-1"}}
    with serve(loopback) as cloud:
        place = CloudPlace(project(hosts), docker_client, loopback, cloud.env())

        # Attached after the kill: through the VM, address, host key and login key the
        # session recorded; the VM goes when the attached session ends.
        loopback.deadman_seconds = 600
        check_attach_case(place, recorded_privately_and_off_the_vm(place))

        # Nobody attaches: the dead-man timer powers the VM off, the cloud terminates it.
        loopback.deadman_seconds = CLOUD_TTL
        identity, killed_at = start_and_kill(place)
        [vm_name] = [vm.name for vm, _ in loopback.vms.values()]
        wait_for(
            "the dead-man timer powers the VM off",
            lambda: vm_name in loopback.powered_off,
            CLOUD_TTL + 90,
        )
        left = count_left(place)
        record(
            "kill -9, cloud VM: nobody attaches",
            done=f"rbottle killed with SIGKILL mid-session; dead-man TTL {CLOUD_TTL}s",
            seen="the VM powered itself off and was terminated; `cleanup --orphans` then"
            " forgot its record and login key",
            lost="nothing" if not left else f"{len(left)} resources left",
            recover_s=time.monotonic() - killed_at,
            ttl_s=CLOUD_TTL,
            left=len(left),
        )
        assert not left, f"left after the dead-man timer: {left}"
        assert (state.state_dir(identity) / session_vm.LOGIN_KEY).exists()
        sweep = Output(place.rbottle("cleanup", "--orphans", "--yes"))
        assert sweep.finish(120) == 0, sweep.text()
        assert "no orphans" in sweep.text(), sweep.text()
        assert not (state.state_dir(identity) / session_vm.LOGIN_KEY).exists()
        assert not (state.state_dir(identity) / session_vm.RECORD).exists()
        assert state.read_metadata(identity).phase == "ended"


def recorded_privately_and_off_the_vm(place: CloudPlace) -> Callable[[str], None]:
    """What the killed session keeps locally for `attach`: for this user only, and its
    login key nowhere on the VM's disk."""

    def look(identity: str) -> None:
        directory = state.state_dir(identity)
        key = directory / session_vm.LOGIN_KEY
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        assert oct((directory / session_vm.RECORD).stat().st_mode & 0o777) == "0o600"
        assert oct(directory.stat().st_mode & 0o777) == "0o700"
        # A line of the key's own secret: its first lines are the same for every ed25519 key.
        body = key.read_text().splitlines()[1:-1]
        secret = body[min(3, len(body) - 1)]
        assert grep_vm_disk(place.the_vm(), secret) == "", "the login key is on the VM's disk"

    return look
