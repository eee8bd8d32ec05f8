"""A session on a fake VM through a network cut: the bottle runs on, the CLI comes back.

The cut drops every packet to and from the VM's sshd inside the VM's own network
namespace (iptables there), so nothing outside this machine's test containers is
touched. The bottle counts out loud; what the user sees must be every line, once, in
order, and the agent's exit status must come back.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from remotebottle.backend.docker import labels as L
from tests.e2e.conftest import rbottle
from tests.e2e.tmux import RBOTTLE, Tmux
from tests.e2e.vmparts import vm
from tests.figures import record
from tests.integration.fakevm import FakeVm, fakevm

__all__ = ["fakevm", "vm"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUT_SECONDS = 30.0
TICKS = 55  # the cut starts at tick 5 and lasts 30 s: 20 s of ticks after it
COUNT = f"i=0; while [ $i -lt {TICKS} ]; do echo tick $i; i=$((i+1)); sleep 1; done; exit 3"
RULES = (
    "INPUT -p tcp --dport 22 -j DROP",
    "OUTPUT -p tcp --sport 22 -j DROP",
)


@contextmanager
def cut(vm: FakeVm) -> Iterator[None]:
    """No packet to or from the VM's sshd while inside; restored whatever happens."""
    for rule in RULES:
        code, out = vm.sh(f"iptables -I {rule}", "root")
        assert code == 0, out
    try:
        yield
    finally:
        for rule in RULES:
            vm.sh(f"iptables -D {rule}", "root")


class Lines:
    """A pipe read line by line in the background, each line with when it arrived."""

    def __init__(self, pipe: object) -> None:
        self.lines: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: object) -> None:
        for line in pipe:  # type: ignore[attr-defined]
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, pattern: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in list(self.lines):
                if re.search(pattern, line):
                    return at
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never came; got {self.text()[-2000:]}")

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def join(self) -> None:
        self._thread.join(timeout=30)


def project_for(vm: FakeVm, write_manifest: Callable[..., Path]) -> Path:
    return write_manifest(
        {
            "bottles": {"plain": {"egress": {"enabled": False}}},
            "agents": {"counter": {"bottle": "plain"}},
            "hosts": {"vm": vm.hosts_entry()},
        }
    ).parent


def agent_running(vm: FakeVm, identity: str | None = None) -> list[str]:
    """The running agents on the VM: this test's own when `identity` is given."""
    only = f" --filter label={L.IDENTITY}={identity}" if identity else ""
    code, out = vm.sh(
        f"docker ps -q --filter label={L.ROLE}={L.ROLE_AGENT} --filter label={L.OWNER}=1{only}",
        "root",
    )
    assert code == 0, out
    return out.split()


def proc_identity(err: Lines) -> str:
    """The bottle's identity, from the CLI's "bottle <id> is up" line."""
    err.wait_for(r"bottle \S+ is up on", timeout=60)
    found = re.search(r"bottle (\S+) is up on", err.text())
    assert found is not None
    return found[1]


def test_a_30s_cut_during_a_scripted_session_loses_and_doubles_nothing(
    vm: FakeVm, agent_image: str, write_manifest: Callable[..., Path]
) -> None:
    project = project_for(vm, write_manifest)
    proc = rbottle(project, "start", "counter", "--host", "vm", "--yes", "--", "sh", "-c", COUNT)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        out.wait_for(r"^tick 5$", timeout=300)
        with cut(vm):
            cut_at = time.monotonic()
            noticed = err.wait_for("lost the link to vm", timeout=CUT_SECONDS)
            time.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
            assert agent_running(vm), "the bottle must run on through the cut"
            restored = time.monotonic()
        back = err.wait_for("the link to vm is back", timeout=120)
        code = proc.wait(timeout=TICKS + 120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out.join()
    err.join()
    assert code == 3, err.text()
    assert [line for _, line in out.lines] == [f"tick {i}" for i in range(TICKS)], err.text()
    said = err.text()
    assert said.count("lost the link to vm") == 1, said
    assert "rbottle attach" not in said and "Traceback" not in said, said
    record(
        "30 s network cut, `-- CMD` (no TTY) on an SSH host",
        done="dropped all packets to/from the VM's sshd for 30 s",
        seen="one 'lost the link ... reconnecting' line, one 'back after N s' line",
        lost="nothing" if code == 3 else "the exit status",
        recover_s=back - restored,
        noticed_after_s=round(noticed - cut_at, 1),
    )


def test_a_30s_cut_during_an_interactive_session_reattaches_the_terminal(
    vm: FakeVm, agent_image: str, write_manifest: Callable[..., Path], tmp_path: Path
) -> None:
    project = project_for(vm, write_manifest)
    term = Tmux.fresh(project)
    marker = secrets.token_hex(4)
    # $((6*7)): the preflight shows the command, and must not match the wait for its output.
    script = f"echo ready-$((6*7))-{marker}; read line; echo got-$line; {COUNT}"
    term.start(f"{RBOTTLE} start counter --host vm --yes -- sh -c '{script}'")
    try:
        term.wait_for(f"ready-42-{marker}", timeout=300)
        term.keys("hello", "Enter")
        term.wait_for("tick 5")
        with cut(vm):
            cut_at = time.monotonic()
            term.wait_for("lost the link to vm", timeout=CUT_SECONDS)
            time.sleep(max(0.0, cut_at + CUT_SECONDS - time.monotonic()))
            restored = time.monotonic()
        term.wait_for("the link to vm is back", timeout=120)
        back = time.monotonic()
        screen = term.wait_for("EXITED=", timeout=TICKS + 120)
        history = term.tmux("capture-pane", "-p", "-t", term.name, "-S", "-400")
    finally:
        term.kill()
    assert "EXITED=3" in screen, screen
    assert "got-hello" in history, history
    ticks = re.findall(r"^tick (\d+)\s*$", history, flags=re.M)
    assert ticks == [str(i) for i in range(TICKS)], history
    assert history.count("lost the link to vm") == 1, history
    record(
        "30 s network cut, interactive (TTY) on an SSH host",
        done="dropped all packets to/from the VM's sshd for 30 s",
        seen="the terminal stays in the session; output made during the cut appears",
        lost="nothing",
        recover_s=back - restored,
    )


FOREVER = "i=0; while [ ! -e /tmp/stop ]; do echo tick $i; i=$((i+1)); sleep 1; done; exit 4"


def test_a_cut_longer_than_the_limit_leaves_the_bottle_and_attach_rides_out_the_next(
    vm: FakeVm, agent_image: str, write_manifest: Callable[..., Path]
) -> None:
    """The CLI gives up after --reconnect-limit and names `rbottle attach`; that attach
    takes the bottle back (all its output, once) and reconnects by itself after a cut."""
    project = project_for(vm, write_manifest)
    args = ("start", "counter", "--host", "vm", "--yes", "--reconnect-limit", "10")
    proc = rbottle(project, *args, "--", "sh", "-c", FOREVER)
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    attach: subprocess.Popen[str] | None = None
    try:
        out.wait_for("^tick 1$", timeout=300)
        [agent] = agent_running(vm, proc_identity(err))
        with cut(vm):
            code = proc.wait(timeout=120)
        err.join()
        said = err.text()
        errors = [line for line in said.splitlines() if line.startswith("error:")]
        assert code == 1 and len(errors) == 1, said
        assert "lost the link to vm" in errors[0], said
        named = re.search(r"rbottle attach (\S+)", said)
        assert named is not None, said
        assert agent_running(vm, named[1]) == [agent], "the bottle must be there to attach to"

        attach = rbottle(project, "attach", named[1])
        seen, told = Lines(attach.stdout), Lines(attach.stderr)
        last = int(out.lines[-1][1].split()[1])
        seen.wait_for(f"^tick {last + 3}$", timeout=120)
        with cut(vm):
            cut_at = time.monotonic()
            told.wait_for("lost the link to vm", timeout=60)
            restored = time.monotonic()
        back = told.wait_for("the link to vm is back", timeout=120)
        now = int(seen.lines[-1][1].split()[1])
        seen.wait_for(f"^tick {now + 2}$", timeout=60)
        code, said = vm.sh(f"docker exec {agent} touch /tmp/stop", "root")
        assert code == 0, said
        assert attach.wait(timeout=120) == 4, told.text()
    finally:
        for running in (proc, attach):
            if running is not None and running.poll() is None:
                running.kill()
        vm.sh(f"docker ps -aq --filter label={L.OWNER}=1 | xargs -r docker rm -f -v", "root")
        vm.sh(
            f"docker network ls -q --filter label={L.OWNER}=1 | xargs -r docker network rm", "root"
        )
        vm.sh(f"docker volume ls -q --filter label={L.OWNER}=1 | xargs -r docker volume rm", "root")
    seen.join()
    told.join()
    ticks = [line for _, line in seen.lines]
    assert ticks == [f"tick {i}" for i in range(len(ticks))], told.text()
    assert told.text().count("lost the link to vm") == 1, told.text()
    record(
        "network cut longer than --reconnect-limit (10 s here; 600 s by default)",
        done="dropped all packets to/from the VM's sshd until the CLI gave up",
        seen="one error line naming `rbottle attach <id>`; exit status 1",
        lost="nothing: the bottle still ran on the VM, and `rbottle attach` showed all of it",
        recover_s=None,
    )
    record(
        "network cut during `rbottle attach`, SSH host",
        done="dropped all packets to/from the VM's sshd until attach said the link was lost",
        seen="one 'lost the link ... reconnecting' line, one 'back after N s' line",
        lost="nothing: every line once, in order; exit status 4 came back",
        recover_s=back - restored,
        noticed_after_s=round(restored - cut_at, 1),
    )
