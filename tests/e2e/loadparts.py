"""Parts for the parallel-load test: the bottle it starts, where those bottles run, what
their agents can reach, and the engine's ping while they start.

An engine is reached with the docker CLI, in a shell: the local one here, a fake VM's
inside the VM (not over SSH, so the test's own look does not load the tunnel it times).
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from remotebottle.backend.docker import labels as L
from remotebottle.backend.docker import supervisor
from tests.e2e.conftest import rbottle

AGENT_PORT = 7000
# What answers on each role's address: a bottle's agent listens on AGENT_PORT (BOTTLE).
PORTS = {L.ROLE_AGENT: AGENT_PORT, L.ROLE_SUPERVISOR: supervisor.PORT}
PROBE_TIMEOUT = 2.0
EXIT = 7

# Listens on AGENT_PORT, says it is up (its hostname is its identity), waits until the
# test writes to /tmp/go (a fifo: no polling while the others start), ends with EXIT.
BOTTLE = f"""
mkfifo /tmp/go
python3 -c '
import pathlib, socket
server = socket.create_server(("0.0.0.0", {AGENT_PORT}), backlog=64)
pathlib.Path("/tmp/listening").touch()
while True:
    server.accept()[0].close()
' &
while [ ! -e /tmp/listening ]; do sleep 0.05; done
echo "up on $(hostname)"
read _ < /tmp/go
echo bye
exit {EXIT}
"""

# Run in an agent with "ip:port" arguments, all at once: a JSON object of what each
# connect did ("open", "timeout" or the error).
PROBE = f"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor

def connect(target):
    ip, port = target.rsplit(":", 1)
    try:
        socket.create_connection((ip, int(port)), timeout={PROBE_TIMEOUT}).close()
        return "open"
    except socket.timeout:
        return "timeout"
    except OSError as exc:
        return exc.strerror or type(exc).__name__

targets = sys.argv[1:]
with ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(dict(zip(targets, pool.map(connect, targets)))))
"""


@dataclass(frozen=True)
class Address:
    identity: str
    role: str
    ip: str

    @property
    def target(self) -> str:
        return f"{self.ip}:{PORTS[self.role]}"


class Engine:
    """Where the bottles run, looked at with the docker CLI through `sh`."""

    def __init__(self, label: str, sh: Callable[[str], tuple[int, str]]) -> None:
        self.label = label
        self.sh = sh

    def ours(self) -> list[str]:
        """Everything labelled as ours on this engine."""
        flt = f"label={L.OWNER}=1"
        code, out = self.sh(
            f"docker ps -aq --filter {flt}; docker network ls -q --filter {flt};"
            f" docker volume ls -q --filter {flt}"
        )
        assert code == 0, out
        return out.split()

    def containers(self, identity: str) -> list[dict[str, Any]]:
        """`docker inspect` of the bottle's containers."""
        ids = f"$(docker ps -q --filter label={L.OWNER}=1 --filter label={L.IDENTITY}={identity})"
        code, out = self.sh(f"docker inspect {ids}")
        assert code == 0, out
        found: list[dict[str, Any]] = json.loads(out)
        return found

    def addresses(self, identity: str) -> list[Address]:
        """The bottle's containers' addresses, on every network they are on."""
        found = []
        for container in self.containers(identity):
            role = container["Config"]["Labels"][L.ROLE]
            for network in container["NetworkSettings"]["Networks"].values():
                if network.get("IPAddress"):
                    assert role in PORTS, f"a {role} container has an address: probe it too"
                    found.append(Address(identity, role, network["IPAddress"]))
        return found

    def in_agent(self, identity: str, argv: Sequence[str], *options: str) -> tuple[int, str]:
        agent = (
            f"$(docker ps -q --filter label={L.IDENTITY}={identity}"
            f" --filter label={L.ROLE}={L.ROLE_AGENT})"
        )
        return self.sh(f"docker exec {shlex.join(options)} {agent} {shlex.join(argv)}")

    def probe(self, identity: str, targets: Sequence[str]) -> dict[str, str]:
        """Connect from the bottle's agent to each "ip:port": what each did."""
        code, out = self.in_agent(identity, ["python3", "-c", PROBE, *targets])
        assert code == 0, out
        result: dict[str, str] = json.loads(out)
        return result

    def release(self, identity: str) -> None:
        """Let the bottle end (BOTTLE waits on its fifo). Detached: the container stops as
        soon as the write wakes it, which may cut an attached exec short."""
        code, out = self.in_agent(identity, ["sh", "-c", "echo go > /tmp/go"], "--detach")
        assert code == 0, f"{identity}: {out}"

    def remove(self, identities: Sequence[str]) -> None:
        """Force-remove what is left of these bottles (after a failure only)."""
        for identity in identities:
            flt = f"--filter label={L.OWNER}=1 --filter label={L.IDENTITY}={identity}"
            self.sh(
                f"docker ps -aq {flt} | xargs -r docker rm -f -v;"
                f" docker network ls -q {flt} | xargs -r docker network rm;"
                f" docker volume ls -q {flt} | xargs -r docker volume rm"
            )


def local_sh(command: str) -> tuple[int, str]:
    done = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


class Run:
    """One `rbottle start` process: its output as it comes, and when its bottle was up."""

    def __init__(self, project: Path, *args: str) -> None:
        self.started = time.monotonic()
        self.proc = rbottle(project, *args)
        self.out: list[str] = []
        self.err: list[str] = []
        self.up_at: float | None = None
        self.identity = ""
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            if lines is self.out and line.startswith("up on ") and self.up_at is None:
                self.identity = line.split()[-1]
                self.up_at = time.monotonic()
            lines.append(line)

    @property
    def start_s(self) -> float:
        assert self.up_at is not None
        return self.up_at - self.started

    def ended(self) -> bool:
        return self.proc.poll() is not None

    def finish(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def text(self) -> str:
        return "".join(self.out) + "".join(self.err)


def wait_until_up(runs: Sequence[Run], timeout: float) -> float:
    """Until every run's bottle is up; when the last one was."""
    deadline = time.monotonic() + timeout
    while not all(run.up_at for run in runs):
        for run in runs:
            if run.ended() and not run.up_at:
                run.finish(10)
                raise AssertionError(f"rbottle ended ({run.proc.returncode}): {run.text()}")
        if time.monotonic() > deadline:
            late = [run.text()[-1500:] for run in runs if not run.up_at]
            raise AssertionError(f"{len(late)} bottles not up in {timeout:.0f}s: {late}")
        time.sleep(0.05)
    return max(run.up_at or 0.0 for run in runs)


class Pinger:
    """`docker ping` on an engine (through a tunnel's socket, say): milliseconds each."""

    def __init__(self, docker_host: str) -> None:
        self.client = docker.DockerClient(base_url=docker_host, timeout=60)
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ping(self) -> float:
        started = time.perf_counter()
        assert self.client.ping()
        took = (time.perf_counter() - started) * 1000
        self.times.append(took)
        return took

    def sample(self, count: int, every: float = 0.05) -> list[float]:
        """`count` pings, `every` s apart."""
        times = []
        for _ in range(count):
            time.sleep(every)
            times.append(self.ping())
        return times

    def start(self, every: float = 0.2) -> None:
        """Ping every `every` s in the background until `stop`."""
        self.times = []

        def loop() -> None:
            while not self._stop.wait(every):
                self.ping()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> list[float]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=120)
        self.client.close()
        return self.times


def p50_p95(times: Sequence[float]) -> tuple[float, float]:
    """Median and 95th percentile, rounded to 0.1 ms."""
    assert len(times) >= 2, times
    p95 = statistics.quantiles(times, n=20, method="inclusive")[18]
    return round(statistics.median(times), 1), round(p95, 1)


@dataclass(frozen=True)
class Probe:
    prober: str  # the identity of the bottle whose agent connected
    to: Address
    outcome: str  # "open", "timeout" or the error

    @property
    def own(self) -> bool:
        return self.to.identity == self.prober


def probe_all(engine: Engine, identities: Sequence[str]) -> list[Probe]:
    """From each bottle's agent, connect to every address of every bottle, its own too."""
    addresses = [a for identity in identities for a in engine.addresses(identity)]
    targets = [a.target for a in addresses]
    with ThreadPoolExecutor(len(identities)) as pool:
        results = list(pool.map(lambda identity: engine.probe(identity, targets), identities))
    return [
        Probe(prober, a, outcome[a.target])
        for prober, outcome in zip(identities, results, strict=True)
        for a in addresses
    ]
