"""`rbottle start -p` (real Claude Code) on a cloud VM made for the session, through a
30 s network cut in the middle of Claude's answer, with the VM's dead-man timer armed.

The cloud is the loopback one (`loopback_cloud.py`), its VM's dead-man check armed with
a TTL of TTL_S seconds: more than a heartbeat interval (60 s) plus the cut, less than two
intervals, so a beat the cut swallows must be made up for as soon as the link is back, or
the VM powers itself off under the session. The fake Messages API runs on the VM, on the
bottle's network, and holds Claude's answer before its last chunk; the cut (iptables in
the VM's network namespace, dropping its sshd's packets, as `test_network_cut.py`) starts
while it holds, at a heartbeat age that puts the next scheduled beat inside the cut. The
answer is released once the CLI has said it lost the link, so Claude finishes, prints
and exits while the link is down.

Claude Code finds the API through the project's `.claude/settings.json` (copied in with
`--cwd`), as a project that points it at a gateway would: the manifest reserves
`ANTHROPIC_BASE_URL` for the credential proxy, whose upstreams must be https:// with a
CA the bottle trusts, which only a rebuilt agent image would.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from remotebottle.backend.docker import labels as L
from remotebottle.hosts.cloud import HEARTBEAT_FILE, HEARTBEAT_SECONDS
from tests.e2e.conftest import HARNESS, TEST_LABEL
from tests.e2e.test_network_cut import Lines, cut
from tests.figures import record
from tests.integration.fakevm import FakeVm
from tests.integration.loopback_cloud import LoopbackProvider, loopback, serve

__all__ = ["loopback"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TTL_S = 100  # > 60 s interval + 30 s cut + reconnecting; < the 120 s a lapsed beat needs
CUT_SECONDS = 30.0
# The heartbeat's age when the cut starts: its next beat (at 60 s) falls inside the cut.
PHASE = (32, 38)
ANSWER = [f"answer line {i:02d} of 12" for i in range(1, 13)]
API = "rbt-fakeapi"
API_URL = "http://fake-api:8080"
CLI = (sys.executable, "-m", "tests.integration.loopback_cloud")  # rbottle, with this cloud
RELEASE = "/tmp/release"
MANIFEST = {
    "bottles": {
        "talker": {
            "egress": {"enabled": False},
            "env": {"ANTHROPIC_API_KEY": "${RB_CUT_KEY}"},
        }
    },
    "agents": {"talker": {"bottle": "talker"}},
    "hosts": {"cloudy": {"provider": "ec2", "region": "eu-west-1"}},
}


class Rbottle:
    """The CLI's process and what it says, read as it comes."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.out, self.err = Lines(proc.stdout), Lines(proc.stderr)

    def until(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll `check` until it gives something true, and give it; fail if rbottle ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := check():
                return found
            if self.proc.poll() is not None:
                self.err.join()
                raise AssertionError(
                    f"rbottle ended ({self.proc.returncode}) before {what}:"
                    f" {self.err.text()[-3000:]}"
                )
            time.sleep(0.2)
        raise AssertionError(f"{what}: not within {timeout:.0f}s: {self.err.text()[-3000:]}")


def the_vm(cloud: LoopbackProvider) -> FakeVm | None:
    with cloud.lock:
        vms = [vm for vm, _ in cloud.vms.values()]
    return vms[0] if vms else None


def vm_sh(vm: FakeVm, command: str) -> str:
    code, out = vm.sh(command)
    assert code == 0, f"{command}: {out}"
    return out


def start_api(vm: FakeVm, image: str, network: str) -> None:
    """The fake Messages API on the VM's engine, as `fake-api` on the bottle's network."""
    data = (HARNESS / "fake_anthropic" / "server.py").read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("rbt-fakeapi.py")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    vm.container.put_archive("/tmp", buffer.getvalue())
    serve_args = f"--reply {shlex.quote(chr(10).join(ANSWER))} --chunks 6 --hold-file {RELEASE}"
    vm_sh(
        vm,
        f"docker create --name {API} --label {TEST_LABEL}=1 --user 1000 --network {network}"
        f" --network-alias fake-api --entrypoint python3 {image} /srv/server.py {serve_args}"
        f" && docker cp /tmp/rbt-fakeapi.py {API}:/srv/server.py && docker start {API}",
    )
    deadline = time.monotonic() + 30
    while "listening" not in vm_sh(vm, f"docker logs {API} 2>&1"):
        assert time.monotonic() < deadline, vm_sh(vm, f"docker logs {API} 2>&1")
        time.sleep(0.2)


def bottle_network(vm: FakeVm) -> str:
    out = vm_sh(vm, f"docker network ls --filter label={L.OWNER}=1 --format '{{{{.Name}}}}'")
    return next((name for name in out.split() if name.endswith("-internal")), "")


def asked(vm: FakeVm) -> bool:
    """Claude Code's streamed /v1/messages request reached the API (which now holds it)."""
    code, out = vm.sh(f"docker exec {API} curl -s http://127.0.0.1:8080/_requests")
    if code != 0:
        return False
    requests: list[dict[str, Any]] = json.loads(out)
    return any(
        r["path"].startswith("/v1/messages") and (r.get("body") or {}).get("stream")
        for r in requests
    )


def beat_at(vm: FakeVm) -> int:
    """When the heartbeat was last renewed (the VM's clock, seconds since the epoch)."""
    return int(vm_sh(vm, f"stat -c %Y {HEARTBEAT_FILE}"))


def beat_since(vm: FakeVm, last: int) -> bool:
    """Whether the heartbeat was renewed after `last`; the VM must still be up."""
    vm.container.reload()
    assert vm.container.status == "running", "the VM powered itself off: the heartbeat lapsed"
    return beat_at(vm) > last


def age(vm: FakeVm) -> int:
    return int(vm_sh(vm, "date +%s")) - beat_at(vm)


def agent_exits_by(vm: FakeVm, deadline: float) -> bool:
    """Whether Claude (the agent container) has ended by `deadline` (time.monotonic())."""
    flt = f"--filter label={L.ROLE}={L.ROLE_AGENT} --filter status=exited"
    while not vm_sh(vm, f"docker ps -aq {flt}").split():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_30s_cut_mid_answer_on_a_cloud_vm_loses_nothing_and_keeps_the_vm_alive(
    loopback: LoopbackProvider,
    docker_client: docker.DockerClient,
    agent_image: str,
    write_manifest: Callable[..., Path],
) -> None:
    loopback.deadman_seconds = TTL_S
    project = write_manifest(MANIFEST).parent
    (project / ".claude").mkdir()
    (project / ".claude" / "settings.json").write_text(
        json.dumps({"env": {"ANTHROPIC_BASE_URL": API_URL}})
    )
    with serve(loopback) as service:
        proc = subprocess.Popen(
            [
                *CLI,
                "start",
                "talker",
                "--host",
                "cloudy",
                "--cwd",
                ".",
                "--yes",
                "-p",
                "Say the twelve lines.",
            ],
            cwd=project,
            env={**os.environ, **service.env(), "RB_CUT_KEY": "sk-ant-e2e-cloud-cut-0123456789"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        cli = Rbottle(proc)
        out, err, until = cli.out, cli.err, cli.until
        try:
            vm: FakeVm = until("the VM is made", lambda: the_vm(loopback), 300)
            network = until("the bottle's network", lambda: bottle_network(vm), 600)
            start_api(vm, agent_image, network)
            until("Claude asks the API", lambda: asked(vm), 180)
            until("the heartbeat's phase", lambda: PHASE[0] <= age(vm) <= PHASE[1], 90)
            last_beat, renewals = beat_at(vm), loopback.renewed
            with cut(vm):
                cut_at = time.monotonic()
                age_at_cut = age(vm)
                noticed = err.wait_for("lost the link to cloudy", timeout=CUT_SECONDS)
                vm_sh(vm, f"docker exec {API} touch {RELEASE}")
                ended_in_cut = agent_exits_by(vm, cut_at + CUT_SECONDS - 1)
                time.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
                swallowed = beat_at(vm) == last_beat and age(vm) >= HEARTBEAT_SECONDS
                restored = time.monotonic()
            back = err.wait_for("the link to cloudy is back", timeout=120)
            until("a heartbeat after the cut", lambda: beat_since(vm, last_beat), 60)
            renewed = time.monotonic()
            gap = beat_at(vm) - last_beat
            code = proc.wait(timeout=180)
        except BaseException:
            print(cli.err.text(), cli.out.text(), sep="\n-- stdout:\n")
            if (seen := the_vm(loopback)) is not None:
                print(seen.sh(f"docker ps -a; docker logs {API} 2>&1 | tail -20", "root")[1])
            raise
        finally:
            if proc.poll() is None:
                proc.kill()
        out.join()
        err.join()
    said = err.text()
    assert code == 0, said
    assert [line for _, line in out.lines] == ANSWER, out.text() + said
    assert said.count("lost the link to cloudy") == 1, said
    assert "Traceback" not in said and "rbottle attach" not in said, said
    assert "heartbeat" not in said, said
    assert ended_in_cut, "Claude was to finish while the link was down"
    assert swallowed, "the cut did not swallow a scheduled beat: the test proved nothing"
    assert gap < TTL_S and loopback.renewed > renewals, (gap, said)
    assert not loopback.powered_off, "the dead-man timer powered the VM off mid-session"
    assert loopback.destroyed == [vm.name] and not loopback.vms, "the session's VM must go"
    assert not docker_client.containers.list(all=True, filters={"name": vm.name})
    assert "destroying the VM" in said
    record(
        "30 s network cut mid-answer, `-p` (real Claude Code) on a cloud VM",
        done=f"dropped all packets to/from the VM's sshd for 30 s while the fake API held"
        f" Claude's answer; dead-man TTL {TTL_S} s, a scheduled heartbeat inside the cut",
        seen="one 'lost the link ... reconnecting' line, one 'back after N s' line, then"
        " the whole answer and exit status 0; the VM destroyed at the end",
        lost="nothing",
        recover_s=back - restored,
        noticed_after_s=round(noticed - cut_at, 1),
        answer_done_during_cut=ended_in_cut,
        heartbeat_age_at_cut_s=age_at_cut,
        heartbeat_gap_s=gap,
        heartbeat_after_back_s=round(renewed - back, 1),
        ttl_s=TTL_S,
        left=len(loopback.vms),
    )
