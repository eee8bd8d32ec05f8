"""Bottles on a remote host: a fake VM (sshd + its own dockerd), reached only over SSH.

The bottle must run on the VM's engine (nothing of ours on the local engine), its
images shipped through the tunnel, its secrets never on the VM's disk, and nothing
of it left on the VM afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from pydantic import SecretStr

from remotebottle.backend.docker import lab
from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker.backend import DockerBottleBackend, LaunchOptions
from remotebottle.backend.spec import BottleSpec, Command, Secretish
from remotebottle.hosts.engine import open_engine
from remotebottle.ops.images import place_images
from tests.e2e.conftest import FAKE_API_URL, FakeApi, finish, owned, rbottle, run_to_end
from tests.e2e.vmparts import grep_vm_disk, target, vm, vm_owned
from tests.integration.fakevm import (
    FAKEVM_BARE_IMAGE,
    FakeVm,
    fakevm,
    skip_unless_image,
    start_fakevm,
)

__all__ = ["fakevm", "vm"]

pytestmark = pytest.mark.e2e

PROBE = """
set -u
printf %s "$GRANTED" | sha256sum | cut -c1-64
curl -sS -m 3 -o /dev/null http://1.1.1.1/ 2>/dev/null && echo ROUTE || echo no-route
getent hosts example.com >/dev/null && echo DNS || echo no-dns
while [ ! -e /tmp/go ]; do sleep 0.2; done
exit 4
"""


def test_cli_start_runs_on_the_vm_and_keeps_secrets_off_its_disk(
    vm: FakeVm,
    docker_client: docker.DockerClient,
    agent_image: str,
    write_manifest: Callable[..., Path],
) -> None:
    secret = f"sk-remote-{secrets.token_hex(16)}"
    project = write_manifest(
        {
            "bottles": {"sealed": {"egress": {"enabled": False}, "env": {"GRANTED": "${RB_S}"}}},
            "agents": {"worker": {"bottle": "sealed"}},
            "hosts": {"vm": vm.hosts_entry()},
        }
    ).parent
    local_before = set(owned(docker_client))
    proc = rbottle(
        project,
        "--debug",  # every logger (paramiko, docker-py, urllib3, ours) on stderr
        "start",
        "worker",
        "--host",
        "vm",
        "--yes",
        "--",
        "sh",
        "-c",
        PROBE,
        env={"RB_S": secret},
    )
    try:
        agent = wait_for_agent(vm, proc)
        assert set(owned(docker_client)) == local_before, "the bottle touched the local engine"
        assert grep_vm_disk(vm, secret) == "", "the secret is on the VM's disk"
        # `list` asks the host the live session recorded; `--host` narrows it to one.
        statuses = listed_status(project)
        assert list(statuses.values()) == ["running"], statuses
        identity = next(iter(statuses))
        assert listed_status(project, "--host", "vm") == {identity: "running"}
        assert listed_status(project, "--host", "local") == {identity: "elsewhere"}
        running = json.loads((isolated_state() / "state" / identity / "metadata.json").read_text())
        assert running["phase"] == "running", running
        vm.sh(f"docker exec {agent} touch /tmp/go")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, err
    lines = out.split()
    assert hashlib.sha256(secret.encode()).hexdigest() in lines
    assert "no-route" in lines and "no-dns" in lines, out
    assert "Traceback" not in err
    assert " DEBUG: " in err and secret not in err
    assert grep_vm_disk(vm, secret) == ""
    assert not vm_owned(vm)
    meta = json.loads(next((isolated_state() / "state").glob("worker-*/metadata.json")).read_text())
    assert meta["host"] == "vm" and meta["ended_at"]
    # The session record: the host as resolved at start, and where the session got to.
    assert meta["phase"] == "ended" and meta["host_entry"]["address"] == vm.ssh_host().address


def listed_status(project: Path, *args: str) -> dict[str, str]:
    code, out, err = finish(rbottle(project, "list", "--format=json", *args), timeout=120)
    assert code == 0, err
    return {b["identity"]: b["status"] for b in json.loads(out)}


def test_cleanup_with_host_removes_what_a_lost_session_left_on_the_vm(
    vm: FakeVm, agent_image: str, write_manifest: Callable[..., Path]
) -> None:
    project = write_manifest({"hosts": {"vm": vm.hosts_entry()}}).parent
    with open_engine(target(vm), progress=lambda _m: None, consent=lambda _q: False) as engine:
        spec = BottleSpec(
            identity=f"lost-{secrets.token_hex(3)[:5]}",
            agent="lost",
            bottle="sealed",
            command=Command(mode="exec", argv=("true",)),
            egress_enabled=False,
            host="vm",
        )
        backend = DockerBottleBackend(engine.client)
        plan = backend.prepare(spec)
        place_images(engine, plan, progress=lambda _m: None)
        with backend.launch(plan, LaunchOptions(tty=False)) as bottle:
            bottle.keep = True  # as if the laptop went away mid-session
            backend.release(bottle)
    assert vm_owned(vm)
    code, _, err = finish(rbottle(project, "cleanup", "--host", "vm"), timeout=120)
    assert code != 0 and "no terminal to confirm on" in err, err
    assert f"rb-{spec.identity}" in err and vm_owned(vm)
    code, _, err = finish(rbottle(project, "cleanup", "--host", "vm", "--yes"), timeout=120)
    assert code == 0, err
    assert "removed" in err and "from vm" in err
    assert not vm_owned(vm)


def isolated_state() -> Path:
    return Path(os.environ["REMOTEBOTTLE_HOME"])


def wait_for_agent(vm: FakeVm, proc: subprocess.Popen[str], timeout: float = 300) -> str:
    """The running agent container's id on the VM, once the command inside is waiting."""
    deadline = time.monotonic() + timeout
    flt = f"label={L.ROLE}={L.ROLE_AGENT}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"rbottle ended early ({proc.returncode}): {err}{out}")
        _, ids = vm.sh(f"docker ps -q --filter {flt}")
        for cid in ids.split():
            code, _ = vm.sh(f"docker exec {cid} pgrep -f 'tmp/go'")
            if code == 0:
                return cid
        time.sleep(0.5)
    raise AssertionError("the bottle never started on the VM")


def test_claude_code_completes_a_print_turn_on_the_vm(
    vm: FakeVm, docker_client: docker.DockerClient, agent_image: str
) -> None:
    with open_engine(target(vm), progress=lambda _m: None, consent=lambda _q: False) as engine:
        spec = BottleSpec(
            identity=f"remote-{secrets.token_hex(3)[:5]}",
            agent="remote",
            bottle="sealed",
            command=Command(mode="print", prompt="say hello"),
            egress_enabled=False,
            env={
                "ANTHROPIC_BASE_URL": Secretish("literal", SecretStr(FAKE_API_URL)),
                "ANTHROPIC_API_KEY": Secretish("env", SecretStr("sk-e2e-remote-0123456789")),
            },
        )
        backend = DockerBottleBackend(engine.client)
        plan = backend.prepare(spec)
        place_images(engine, plan, progress=lambda _m: None)
        api = FakeApi(engine.client, agent_image, "Hello from a fake VM.")
        try:
            options = LaunchOptions(tty=False, before_agent_start=api.join)
            code, out, err = run_to_end(backend, plan, options)
            assert code == 0, err.getvalue().decode()
            assert "Hello from a fake VM." in out.getvalue().decode()
            assert any(r["path"].startswith("/v1/messages") for r in api.requests())
        finally:
            api.remove()
        tunnel_dir = engine.remote.tunnel.directory if engine.remote else None
    assert tunnel_dir is not None and not tunnel_dir.exists()


EGRESS_PROBES = f"""
claude -p hello
curl="curl -s -m 10 -o /dev/null -w %{{http_code}}"
echo "other-host $($curl http://example.com/)"
echo "metadata $($curl http://169.254.169.254/latest/meta-data/)"
echo "around-the-proxy $($curl --noproxy '*' {FAKE_API_URL}/v1/models)"
"""


def test_on_the_vm_the_egress_proxy_still_decides_what_leaves(
    vm: FakeVm, docker_client: docker.DockerClient, agent_image: str, pipelock_image: str
) -> None:
    """The same bottle with its egress proxy, shipped to the VM: Claude Code's turn goes
    through pipelock to the allowlisted API; other hosts, the metadata address and a
    connection around the proxy are refused."""
    with open_engine(target(vm), progress=lambda _m: None, consent=lambda _q: False) as engine:
        spec = BottleSpec(
            identity=f"remote-{secrets.token_hex(3)[:5]}",
            agent="remote",
            bottle="filtered",
            command=Command(mode="exec", argv=("sh", "-c", EGRESS_PROBES)),
            egress_allowlist=("fake-api",),
            # A literal placeholder: a key read from the environment is one of the bottle's
            # own secrets, which the egress proxy refuses to let out (test_egress.py).
            env={
                "ANTHROPIC_BASE_URL": Secretish("literal", SecretStr(FAKE_API_URL)),
                "ANTHROPIC_API_KEY": Secretish("literal", SecretStr("placeholder-not-a-key")),
            },
        )
        backend = DockerBottleBackend(engine.client)
        plan = backend.prepare(spec)
        assert pipelock_image in place_images(engine, plan, progress=lambda _m: None).shipped
        api = FakeApi(engine.client, agent_image, "Through pipelock on a fake VM.")
        options = LaunchOptions(tty=False, before_agent_start=api.join)
        try:
            trusting = lab.trusting_private_upstreams(plan, ["fake-api"])
            code, out, err = run_to_end(backend, trusting, options)
            assert any(r["path"].startswith("/v1/messages") for r in api.requests())
        finally:
            api.remove()
    lines = out.getvalue().decode().splitlines()
    assert code == 0, err.getvalue().decode()
    assert lines[0] == "Through pipelock on a fake VM.", lines
    assert lines[1:] == ["other-host 403", "metadata 403", "around-the-proxy 000"]


def test_a_bare_vm_gets_docker_then_runs_the_bottle(
    docker_client: docker.DockerClient,
    agent_image: str,
    write_manifest: Callable[..., Path],
    isolated_home: Path,
    tmp_path: Path,
) -> None:
    skip_unless_image(docker_client, FAKEVM_BARE_IMAGE)
    with start_fakevm(docker_client, tmp_path / "bare", image=FAKEVM_BARE_IMAGE) as bare:
        assert bare.sh("command -v dockerd")[0] != 0
        ssh_dir = isolated_home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "known_hosts").write_text(bare.known_hosts.read_text())
        project = write_manifest(
            {
                "bottles": {"sealed": {"egress": {"enabled": False}}},
                "agents": {"worker": {"bottle": "sealed"}},
                "hosts": {"bare": bare.hosts_entry()},
            }
        ).parent
        work = tmp_path / "work"
        work.mkdir()
        (work / "kept.txt").write_text("from the laptop\n")
        (work / "ignored.log").write_text("not for the bottle\n")
        (work / ".gitignore").write_text("*.log\n")
        command = "echo ran-as-$(id -u)-in-$(hostname); cat kept.txt; ls -A; exit 7"
        argv = ("start", "worker", "--host", "bare", "--cwd", str(work), "--yes", "--")
        code, out, err = finish(rbottle(project, *argv, "sh", "-c", command), timeout=900)
        assert code == 7, err
        assert "installing Docker Engine" in err
        assert "shipped" in err
        assert "ran-as-1000-in-worker-" in out
        assert "from the laptop" in out
        assert "ignored.log" not in out and ".gitignore" in out
        assert vm_owned(bare) == []
