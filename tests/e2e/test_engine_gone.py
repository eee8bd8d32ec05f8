"""The engine or the VM goes away under a running session (`start --host … -- CMD`).

- dockerd restarted on the VM: the host still answers SSH, so this is no network cut.
  The CLI must not wait out the reconnect limit: it waits a short while for the engine,
  finds the bottle stopped, keeps its transcript (under gVisor, as the fake VM runs it,
  the stopped container's files cannot be read: the last copy taken during the session
  is kept), removes the bottle, and ends with one `error:` line and one `hint:` line
  naming `rbottle resume`.
- The VM destroyed (its fake-VM container removed): nothing answers, so the CLI goes
  through reconnecting (a short --reconnect-limit here) and ends the same way. What the
  VM held is gone with it; the transcript is what the session copied back while it ran
  (`ops/checkpoint.py`, every 2 s here). `rbottle resume` then runs the bottle
  on a new VM, the SSH alias the session was started with now pointing there.

What the user saw, what was lost and how long it took go to `tests/figures.py`.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from remotebottle import state
from remotebottle.ops.replay import Shown
from remotebottle.ops.stream import replay_ended
from tests.e2e.conftest import finish, rbottle
from tests.e2e.test_network_cut import Lines, proc_identity
from tests.e2e.vmparts import vm, vm_owned
from tests.figures import record
from tests.integration.fakevm import (
    BASE_IMAGE,
    TEST_LABEL,
    FakeVm,
    fakevm,
    known_hosts_line,
    start_fakevm,
)

__all__ = ["fakevm", "vm"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT = "/home/agent/.claude/projects/-home-agent-work"
TURN = '{"turn": %d}'
MANIFEST = {
    "bottles": {"sealed": {"egress": {"enabled": False}}},
    "agents": {"worker": {"bottle": "sealed"}},
}
# Writes to its transcript, says so, and runs until stopped.
SESSION = f"""
mkdir -p {PROJECT}
echo '{TURN % 1}' >> {PROJECT}/s.jsonl
echo wrote-1
sleep 3
echo '{TURN % 2}' >> {PROJECT}/s.jsonl
echo wrote-2
i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done
"""
PROBE = f"cat {PROJECT}/s.jsonl; hostname"
RESTART_DOCKERD = """
pid=$(pidof dockerd)
args=$(tr '\\0' ' ' < /proc/$pid/cmdline)
kill -TERM $pid
while kill -0 $pid 2>/dev/null; do sleep 0.1; done
setsid $args </dev/null >>/var/log/dockerd.log 2>&1 &
until docker info >/dev/null 2>&1; do sleep 0.2; done
"""
SYNC_ENV = "REMOTEBOTTLE_TRANSCRIPT_SYNC_SECONDS"
SYNC = {SYNC_ENV: "2"}


def said_once(err: str) -> tuple[str, str]:
    """The one error line and the one hint line (at most one of each, no traceback)."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    hints = [line for line in err.splitlines() if line.startswith("hint:")]
    assert len(errors) == 1 and len(hints) <= 1, err
    assert "Traceback" not in err, err
    return errors[0], hints[0] if hints else ""


def saved_turns(identity: str) -> list[str]:
    """The turns in the transcript snapshot kept on this machine."""
    path = state.snapshot_file(identity)
    if not path.is_file():
        return []
    with tarfile.open(path) as tar:
        member = tar.extractfile("projects/-home-agent-work/s.jsonl")
        return [] if member is None else member.read().decode().splitlines()


def wait_until(what: str, check: Callable[[], bool], timeout: float, told: Lines) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s; {told.text()[-3000:]}")
        time.sleep(0.2)
    return time.monotonic() - started


def resume(project: Path, identity: str) -> tuple[list[str], float]:
    """`rbottle resume` printing what the transcript holds; its output and duration."""
    started = time.monotonic()
    code, out, err = finish(
        rbottle(project, "resume", identity, "--yes", "--", "sh", "-c", PROBE), timeout=300
    )
    assert code == 0, err
    assert "Traceback" not in err, err
    return out.splitlines(), time.monotonic() - started


@dataclass
class Broken:
    """A session that `act` broke: what it said and how long each step took."""

    identity: str
    code: int
    copied_s: float  # from the session's start to its transcript copied back
    act_s: float
    ended_s: float  # from `act` to the CLI's exit
    out: Lines
    told: str
    error: str
    hint: str


def break_a_session(
    project: Path, args: tuple[str, ...], act: Callable[[], object], *, wait_s: float
) -> Broken:
    """`rbottle ARGS -- SESSION`; once its transcript is copied back, `act`, then its end:
    one error line (status 1), at most one hint, no traceback."""
    proc = rbottle(project, *args, "--", "sh", "-c", SESSION, env=SYNC)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        out.wait_for("^wrote-2$", timeout=300)
        identity = proc_identity(err)
        copied_s = wait_until(
            "the session copies its transcript back",
            lambda: saved_turns(identity) == [TURN % 1, TURN % 2],
            timeout=30,
            told=err,
        )
        acted_at = time.monotonic()
        act()
        act_s = time.monotonic() - acted_at
        code = proc.wait(timeout=wait_s)
        ended_s = time.monotonic() - acted_at
    finally:
        if proc.poll() is None:
            proc.kill()
    out.join()
    err.join()
    told = err.text()
    error, hint = said_once(told)
    assert code == 1, told
    return Broken(identity, code, copied_s, act_s, ended_s, out, told, error, hint)


def test_dockerd_restarted_under_a_session_ends_it_with_one_error_and_resume_goes_on(
    vm: FakeVm, agent_image: str, write_manifest: Callable[..., Path], doomed: Doomed
) -> None:
    """On the shared VM. (`doomed`, the next test's VM, starts loading meanwhile.)"""
    project = write_manifest({**MANIFEST, "hosts": {"vm": vm.hosts_entry()}}).parent
    args = ("start", "worker", "--host", "vm", "--yes")

    def restart() -> None:
        code, said = vm.sh(RESTART_DOCKERD, "root")
        assert code == 0, said

    broken = break_a_session(project, args, restart, wait_s=180)
    identity, told, error, hint = broken.identity, broken.told, broken.error, broken.hint
    assert "Docker engine on vm" in error and "stopped" in error, told
    assert f"rbottle resume {identity}" in hint, told
    assert "lost the link" not in told, "an engine restart is no network cut"
    assert saved_turns(identity) == [TURN % 1, TURN % 2], "the transcript must be kept"
    meta = state.read_metadata(identity)
    assert meta.phase == "ended" and meta.ended_at, meta
    assert not vm_owned(vm), "the stopped bottle must be removed"
    ticks = [line for _, line in broken.out.lines if line.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(len(ticks))], broken.out.text()

    shown, resume_s = resume(project, identity)
    assert shown == [TURN % 1, TURN % 2, identity], shown
    record(
        "dockerd restarted on the VM mid-session (`-- CMD`), SSH host",
        done="SIGTERM to the VM's dockerd, then started again (as `systemctl restart docker`)",
        seen="one 'engine stopped answering, though the host does' line, then one error"
        " line (the bottle stopped with the engine) and a hint naming `rbottle resume`",
        lost="the bottle's process (the engine stopped it); not its output, nor its"
        " transcript up to the last copy taken during the session (every"
        f" {SYNC[SYNC_ENV]} s here, 15 s by default, when it changed; under gVisor the"
        " stopped container's files cannot be read)",
        recover_s=resume_s,
        restart_s=round(broken.act_s, 1),
        error_after_s=round(broken.ended_s, 1),
        said=[error, hint],
    )


class Doomed:
    """A fake VM of this module's own, with the agent image loaded, started in a thread
    as soon as the module asks for it (loading the image takes about a minute); the
    second test destroys it."""

    def __init__(self, workdir: Path, image: str) -> None:
        self.vm: FakeVm | None = None
        self.error: BaseException | None = None
        self._stack = contextlib.ExitStack()
        self._thread = threading.Thread(target=self._start, args=(workdir, image), daemon=True)
        self._thread.start()

    def _start(self, workdir: Path, image: str) -> None:
        try:
            client = docker.from_env(timeout=600)  # its own: this runs beside the tests
            self._stack.callback(client.close)
            self.vm = self._stack.enter_context(start_fakevm(client, workdir, load_images=(image,)))
        except BaseException as exc:  # handed to the test by `get`
            self.error = exc

    def get(self) -> FakeVm:
        self._thread.join(timeout=600)
        if self.error is not None:
            raise self.error
        assert self.vm is not None
        return self.vm

    def close(self) -> None:
        self._thread.join(timeout=600)
        self._stack.close()


@pytest.fixture(scope="module")
def doomed(agent_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doomed]:
    started = Doomed(tmp_path_factory.mktemp("doomed"), agent_image)
    try:
        yield started
    finally:
        started.close()


def point_alias(home: Path, alias: str, vm: FakeVm) -> None:
    """~/.ssh/config's `alias` now leads to `vm`, whose host key the user trusts."""
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "config").write_text(
        f"Host {alias}\n  HostName {vm.host}\n  Port {vm.port}\n  User {vm.user}\n"
        f"  IdentityFile {vm.key_path}\n  IdentitiesOnly yes\n"
    )
    with (ssh / "known_hosts").open("a") as known:
        known.write(known_hosts_line(vm.host, vm.port, vm.host_key))


def test_the_vm_destroyed_under_a_session_ends_it_and_resume_runs_on_a_new_vm(
    doomed: Doomed,
    vm: FakeVm,
    agent_image: str,
    write_manifest: Callable[..., Path],
    isolated_home: Path,
) -> None:
    """The session runs on a VM of its own, reached by an ~/.ssh/config alias; once it is
    destroyed, the alias leads to another VM (the shared one), where `resume` runs."""
    project = write_manifest(MANIFEST).parent
    first = doomed.get()
    point_alias(isolated_home, "devbox", first)
    args = ("start", "worker", "--host", "devbox", "--yes", "--reconnect-limit", "5")
    broken = break_a_session(
        project, args, lambda: first.container.remove(force=True, v=True), wait_s=120
    )
    identity, told, error, hint = broken.identity, broken.told, broken.error, broken.hint
    assert "lost the link to devbox" in error, told
    assert f"rbottle resume {identity}" in hint, told
    meta = state.read_metadata(identity)
    assert meta.phase == "detached" and meta.ended_at is None, meta
    assert saved_turns(identity) == [TURN % 1, TURN % 2], "the copied transcript is kept"

    point_alias(isolated_home, "devbox", vm)
    shown, resume_s = resume(project, identity)
    assert shown == [TURN % 1, TURN % 2, identity], shown
    assert json.loads(shown[0]) == {"turn": 1}
    assert not vm_owned(vm), "the resumed bottle must be removed when it ends"
    record(
        "VM destroyed mid-session (`-- CMD`), SSH host; resumed on another VM",
        done="the fake VM's container removed with its disks; the host's ~/.ssh/config"
        " alias then pointed at another VM",
        seen="one 'lost the link ... reconnecting' line, then after --reconnect-limit (5 s"
        " here; 600 s by default) one error line and a hint naming `rbottle resume`",
        lost="the bottle's process and what its transcript gained since the last copy"
        f" (copied every {SYNC[SYNC_ENV]} s here, 15 s by default, when it changed);"
        " `rbottle resume` on the new VM had the rest",
        recover_s=resume_s,
        destroy_s=round(broken.act_s, 1),
        error_after_s=round(broken.ended_s, 1),
        copied_after_s=round(broken.copied_s, 1),
        said=[error, hint],
    )


def test_a_bottle_that_ended_while_nobody_was_attached_shows_the_rest_once(
    docker_client: docker.DockerClient,
) -> None:
    """What `stay_attached` does after a cut during which the agent exited: attaching to a
    stopped container would replay its log and then hang; `replay_ended` reads the log
    alone and gives the exit status (local engine: the same API the tunnel carries)."""
    script = "echo one; echo two >&2; echo three; printf four; exit 6"
    container = docker_client.containers.run(
        BASE_IMAGE, ["sh", "-c", script], detach=True, labels={TEST_LABEL: "1"}
    )
    try:
        container.wait(timeout=60)
        shown = Shown()
        replay = shown.replay()
        shown.take(1, b"one\nth", replay)  # what the terminal showed before the cut
        out, err = io.BytesIO(), io.BytesIO()
        end = replay_ended(
            docker_client, str(container.id), tty=False, shown=shown, stdout=out, stderr=err
        )
    finally:
        container.remove(force=True)
    assert end.exit_code == 6 and not end.link_lost
    assert out.getvalue() == b"ree\nfour", "the rest of the line it was on, then the rest"
    assert err.getvalue() == b"two\n"
