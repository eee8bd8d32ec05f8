"""Eight bottles started at once from eight `rbottle` processes, on one fake VM and locally.

Each case first starts one bottle alone (the baseline), then eight at once, each from a
CLI process of its own. All eight must come up; then, from inside each agent, the test
connects to every address of every bottle's containers (from `docker inspect` on the
engine they run on): its own supervisor and its own agent's listener must answer (so a
probe can succeed), and nothing of any other bottle may. Then all eight end, and nothing
labelled as ours may be left on the bottles' engine or the local one.

On the VM the Docker tunnel's ping (`rbottle env`, a ninth process) is timed idle and
while the eight start. The figures go to `tests/figures.py` for docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import select
import shlex
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest

from remotebottle.backend.docker import labels as L
from tests.e2e.conftest import rbottle
from tests.e2e.loadparts import (
    BOTTLE,
    EXIT,
    Engine,
    Pinger,
    Probe,
    Run,
    local_sh,
    p50_p95,
    probe_all,
    wait_until_up,
)
from tests.e2e.vmparts import vm
from tests.figures import record
from tests.integration.fakevm import FakeVm, fakevm, load_image

__all__ = ["fakevm", "vm"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

COUNT = 8
UP_TIMEOUT = 300.0
MANIFEST = {
    "bottles": {"sealed": {"egress": {"enabled": False}}},
    "agents": {"worker": {"bottle": "sealed"}},
}


@dataclass
class Load:
    """Eight bottles started at once on `engine`, after one alone."""

    engine: Engine
    local: Engine
    project: Path
    host: tuple[str, ...] = ()
    pinger: Pinger | None = None
    one_s: float = 0.0
    all_s: float = 0.0
    teardown_s: float = 0.0
    probes: list[Probe] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    under_load_ms: list[float] = field(default_factory=list)

    def start(self) -> Run:
        return Run(self.project, "start", "worker", *self.host, "--yes", "--", "sh", "-c", BOTTLE)

    def run(self) -> None:
        before = set(self.engine.ours()) | set(self.local.ours())
        runs: list[Run] = []
        try:
            runs = [self.start()]
            wait_until_up(runs, UP_TIMEOUT)
            self.one_s = runs[0].start_s
            self.end(runs)

            if self.pinger:
                self.pinger.start()
            runs = [self.start() for _ in range(COUNT)]
            last_up = wait_until_up(runs, UP_TIMEOUT)
            self.all_s = last_up - runs[0].started
            if self.pinger:
                self.under_load_ms = self.pinger.stop()

            identities = [run.identity for run in runs]
            assert len(set(identities)) == COUNT, identities
            self.check_running(identities)
            self.probes = probe_all(self.engine, identities)

            released = time.monotonic()
            self.end(runs)
            self.teardown_s = time.monotonic() - released
            self.left = self.count_left(before)
        finally:
            self.clean_up_after_failure(runs)

    def check_running(self, identities: list[str]) -> None:
        role = f"label={L.ROLE}={L.ROLE_AGENT}"
        code, out = self.engine.sh(
            f"docker ps --filter {role} --format '{{{{.Label \"{L.IDENTITY}\"}}}}'"
        )
        assert code == 0, out
        assert set(identities) <= set(out.split()), f"not all running: {out}"

    def end(self, runs: list[Run]) -> None:
        """Let each bottle end; each rbottle must pass its exit status on, untroubled."""
        with ThreadPoolExecutor(len(runs)) as pool:
            list(pool.map(self.engine.release, [run.identity for run in runs]))
        for run in runs:
            assert run.finish(120) == EXIT, run.text()
            assert "bye" in "".join(run.out), run.text()
            assert "Traceback" not in run.text(), run.text()

    def count_left(self, before: set[str]) -> list[str]:
        """What is new and left once removals settle, on the bottles' engine and the local
        one (the same engine for the local case)."""
        deadline = time.monotonic() + 15
        while True:
            left = (set(self.engine.ours()) | set(self.local.ours())) - before
            if not left or time.monotonic() > deadline:
                return sorted(left)
            time.sleep(0.3)

    def clean_up_after_failure(self, runs: list[Run]) -> None:
        if self.pinger:
            self.pinger.stop()
        alive = [run for run in runs if not run.ended()]
        for run in alive:
            run.kill()
        if alive:
            self.engine.remove([run.identity for run in runs if run.identity])

    def check_isolation(self) -> tuple[int, int]:
        """Own addresses open, every other bottle's unreachable: (own, others) counted."""
        own = [p for p in self.probes if p.own]
        others = [p for p in self.probes if not p.own]
        shut = [p for p in own if p.outcome != "open"]
        assert not shut, f"a bottle could not reach its own containers: {shut}"
        roles = {p.to.role for p in own}
        assert roles == {L.ROLE_AGENT, L.ROLE_SUPERVISOR}, roles
        # "Connection refused" is a failed connect too, but from an address that answered.
        reached = [p for p in others if p.outcome in ("open", "Connection refused")]
        assert not reached, f"reached another bottle: {reached}"
        assert len({p.prober for p in others}) == COUNT
        return len(own), len(others)

    def figures(self) -> dict[str, object]:
        return {
            "one_start_s": round(self.one_s, 1),
            "all_8_s": round(self.all_s, 1),
            "ratio_vs_8x_one": round(self.all_s / (COUNT * self.one_s), 2),
            "teardown_s": round(self.teardown_s, 1),
            "left": len(self.left),
        }


def record_load(load: Load, where: str, **extra: object) -> None:
    own, others = load.check_isolation()
    outcomes = sorted({p.outcome for p in load.probes if not p.own})
    record(
        f"8 bottles at once, {where}",
        done=f"8 `rbottle start -- CMD` processes at once, after one alone, on the {where}",
        seen=f"all 8 up; from each agent, {others} connects to other bottles' agents and"
        f" sidecars failed ({', '.join(outcomes)}), {own} to its own succeeded; all 8 ended",
        lost="nothing" if not load.left else f"{len(load.left)} resources left",
        recover_s=None,
        **load.figures(),
        **extra,
    )


@contextlib.contextmanager
def tunnel(project: Path, host: str, timeout: float = 120) -> Iterator[str]:
    """`rbottle env HOST` running: the DOCKER_HOST of its tunnel."""
    proc = rbottle(project, "env", host)
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("export DOCKER_HOST="):
            proc.terminate()
            raise AssertionError(f"no tunnel: {line!r} {proc.communicate(timeout=30)[1]}")
        yield shlex.split(line)[1].removeprefix("DOCKER_HOST=")
    finally:
        if proc.poll() is None:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
            assert "Traceback" not in err, err


def ensure_agent_image(vm: FakeVm, client: docker.DockerClient, image: str) -> None:
    """The agent image on the VM beforehand, so that one start does not time its shipping
    (an earlier test may have left another image under its name)."""
    code, out = vm.sh(f"docker image inspect --format '{{{{.Id}}}}' {image}")
    if code != 0 or out.strip() != client.images.get(image).id:
        timeout, client.api.timeout = client.api.timeout, 600
        try:
            load_image(client, vm, image)  # a GB: `docker load` answers only at the end
        finally:
            client.api.timeout = timeout


@pytest.fixture
def project(write_manifest: Callable[..., Path]) -> Callable[[dict[str, object]], Path]:
    def make(hosts: dict[str, object]) -> Path:
        return write_manifest({**MANIFEST, "hosts": hosts}).parent

    return make


def test_8_bottles_at_once_on_one_vm(
    vm: FakeVm,
    docker_client: docker.DockerClient,
    agent_image: str,
    project: Callable[[dict[str, object]], Path],
) -> None:
    ensure_agent_image(vm, docker_client, agent_image)
    where = project({"vm": vm.hosts_entry()})
    local = Engine("local engine", local_sh)
    with tunnel(where, "vm") as docker_host:
        pinger = Pinger(docker_host)
        idle = pinger.sample(40)
        load = Load(Engine("fake VM", vm.sh), local, where, ("--host", "vm"), pinger)
        load.run()
    idle_p50, idle_p95 = p50_p95(idle)
    load_p50, load_p95 = p50_p95(load.under_load_ms)
    record_load(
        load,
        "SSH host (one fake VM)",
        ping_idle_p50_ms=idle_p50,
        ping_idle_p95_ms=idle_p95,
        ping_load_p50_ms=load_p50,
        ping_load_p95_ms=load_p95,
        pings_under_load=len(load.under_load_ms),
    )
    assert not load.left, f"left behind: {load.left}"


def test_8_bottles_at_once_on_the_local_engine(
    docker_client: docker.DockerClient,
    agent_image: str,
    project: Callable[[dict[str, object]], Path],
) -> None:
    local = Engine("local engine", local_sh)
    load = Load(local, local, project({}))
    load.run()
    record_load(load, "local engine")
    assert not load.left, f"left behind: {load.left}"
