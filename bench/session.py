"""Bench: a remote bottle as the user meets it, against what they would do by hand.

One fake VM (sshd + its own dockerd, in a container reached over 127.0.0.1), one run,
every figure a median with its baseline measured alternately in the same run:

- Start to exit of `-- true`, end to end from the command line: `rbottle start --host`
  vs `ssh vm docker run --rm IMAGE true` (the same image, already on the VM), and
  `rbottle start` on the local engine vs `docker run --rm IMAGE true`. Ours does more
  (a private network, setup through tmpfs, labels, state, teardown); the ratio says
  what that costs.
- Keystroke echo in an interactive session: one byte typed into a pseudo-terminal until
  it comes back, through `rbottle start --host vm -- cat` (our stream: the Docker
  attach API through the SSH tunnel) vs `ssh -t vm docker run -it IMAGE cat` (OpenSSH
  plus the docker CLI on the VM), and plain `ssh -t vm cat` as the floor.

The ssh baseline uses a temporary ssh config and known_hosts; the real ~/.ssh is never
read or written.

    python bench/session.py [--runs 5] [--keys 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Callable
from pathlib import Path

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tunnel import ALIAS, machine, ssh_setup  # noqa: E402
from remotebottle.backend.docker.images import build_agent_image  # noqa: E402
from tests.integration.fakevm import BASE_IMAGE, FakeVm, start_fakevm  # noqa: E402

# The agent image's entrypoint waits for a bottle's setup; a bare run skips it.
DOCKER_RUN = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "true"]
SSH_DOCKER_RUN = ["ssh", ALIAS, *DOCKER_RUN]

READY = "RB_READY"
# Says when the session is attached (typing is not echoed before), then echoes what is typed.
# The quotes keep READY itself off the command line, which the preflight prints.
CAT = 'echo RB_""READY; exec cat'

MANIFEST = {
    "bottles": {"sealed": {"egress": {"enabled": False}}},
    "agents": {"worker": {"bottle": "sealed"}},
}


def timed(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr[-500:]!r}")
    return elapsed


class Pty:
    """A command on a pseudo-terminal, read and written like a user would."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            # A user's terminal as ssh and rbottle leave it: no local echo, so every echo
            # measured is the far end's.
            tty.setraw(0)
            os.chdir(cwd)
            os.execvpe(args[0], args, env)  # noqa: S606 (argv, no shell)
        self.seen = b""

    def read_until(self, needle: bytes, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{needle!r} never came; last output: {self.seen[-300:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child is gone
                    chunk = b""
                if not chunk:
                    raise EOFError(f"ended before {needle!r}: {self.seen[-300:]!r}")
                self.seen += chunk

    def echo_ms(self, n: int) -> list[float]:
        """Round trips of one typed byte until its echo, in ms."""
        samples = []
        for i in range(n):
            key = b"abcdefghijklmnopqrstuvwxyz"[i % 26 : i % 26 + 1]
            self.seen = b""
            start = time.perf_counter()
            os.write(self.fd, key)
            self.read_until(key, timeout=10)
            samples.append((time.perf_counter() - start) * 1000)
        return samples

    def ready(self, timeout: float = 300) -> None:
        """Until the far end has printed READY (the session is attached)."""
        self.read_until(READY.encode(), timeout)

    def finish(self) -> int:
        """End `cat` (a newline, then Ctrl-D; SIGTERM if that is not enough) and reap the
        command; return its status."""
        os.write(self.fd, b"\r")
        time.sleep(0.2)
        os.write(self.fd, b"\x04")
        started = time.monotonic()
        terminated = False
        while time.monotonic() - started < 120:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if not terminated and time.monotonic() - started > 5:
                os.kill(self.pid, signal.SIGTERM)
                terminated = True
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.fd, 4096)
        raise TimeoutError(f"the session did not end; last output: {self.seen[-300:]!r}")


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1]


def row(label: str, value: float, base: float, unit: str = "ms", extra: str = "") -> None:
    print(f"  {label:<52} {value:8.1f}{unit} {value / base:6.2f}{extra}")


def bench_start(
    runs: int, rbottle: list[str], env: dict[str, str], project: Path, image: str
) -> None:
    paths: dict[str, Callable[[], float]] = {
        "ssh vm docker run --rm IMAGE true": lambda: timed(
            [*SSH_DOCKER_RUN, image],
            env,
            project,
        ),
        "rbottle start --host vm -- true": lambda: timed(
            [*rbottle, "start", "worker", "--host", "vm", "--yes", "--", "true"], env, project
        ),
        "docker run --rm IMAGE true (local)": lambda: timed([*DOCKER_RUN, image], env, project),
        "rbottle start -- true (local)": lambda: timed(
            [*rbottle, "start", "worker", "--yes", "--", "true"], env, project
        ),
    }
    samples: dict[str, list[float]] = {label: [] for label in paths}
    for _ in range(runs):
        for label, measure in paths.items():
            samples[label].append(measure() * 1000)
    med = {label: statistics.median(values) for label, values in samples.items()}
    labels = list(paths)
    print(f"\nstart to exit, end to end (median of {runs}, alternating)   median  ratio")
    row(labels[0] + " (baseline)", med[labels[0]], med[labels[0]])
    row(labels[1], med[labels[1]], med[labels[0]])
    row(labels[2] + " (baseline)", med[labels[2]], med[labels[2]])
    row(labels[3], med[labels[3]], med[labels[2]])


def bench_echo(
    keys: int, rbottle: list[str], env: dict[str, str], project: Path, image: str
) -> None:
    sessions = {
        "ssh -t vm docker run -it IMAGE cat": [
            "ssh", "-t", ALIAS, "docker", "run", "--rm", "-it", "--network", "none",
            "--entrypoint", "sh", image, "-c", f"'{CAT}'",
        ],
        "rbottle start --host vm -- cat": [
            *rbottle, "start", "worker", "--host", "vm", "--yes", "--", "sh", "-c", CAT,
        ],
        "ssh -t vm cat (floor)": ["ssh", "-t", ALIAS, f"sh -c '{CAT}'"],
    }  # fmt: skip
    results: dict[str, list[float]] = {label: [] for label in sessions}
    # Two rounds, interleaved, so that a noisy stretch hits every path alike.
    for _ in range(2):
        for label, args in sessions.items():
            session = Pty(args, env, project)
            session.ready()
            results[label] += session.echo_ms(keys // 2)
            try:
                session.finish()
            except TimeoutError as exc:
                raise RuntimeError(f"{label}: {exc}") from None
    base = summary(results["ssh -t vm docker run -it IMAGE cat"])
    print(f"\nkeystroke echo, {keys} keys each                          median  ratio    p95")
    for label, samples in results.items():
        med, p95 = summary(samples)
        suffix = " (baseline)" if label.startswith("ssh -t vm docker") else ""
        row(label + suffix, med, base[0], extra=f" {p95:7.1f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts per path")
    parser.add_argument("--keys", type=int, default=200, help="keystrokes per session kind")
    parser.add_argument("--only", choices=("start", "echo"), help="run one of the two benches")
    args = parser.parse_args()

    local = docker.from_env(timeout=600)
    image = build_agent_image(local, lambda msg: print(msg, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="rbt-bench-") as tmp:
        work = Path(tmp)
        print("starting a fake VM (sshd + dockerd) ...", file=sys.stderr)
        with start_fakevm(local, work / "vm", load_images=(BASE_IMAGE,)) as vm:
            env, project = prepare(vm, work)
            rbottle = [sys.executable, "-m", "remotebottle"]
            print("first start on the VM (ships the agent image) ...", file=sys.stderr)
            first = [*rbottle, "start", "worker", "--host", "vm", "--yes", "--", "true"]
            timed(first, env, project)
            print(f"machine: {machine()}; Docker {local.version()['Version']} (VM: same)")
            if args.only != "echo":
                bench_start(args.runs, rbottle, env, project, image)
            if args.only != "start":
                bench_echo(args.keys, rbottle, env, project, image)


def prepare(vm: FakeVm, work: Path) -> tuple[dict[str, str], Path]:
    """The environment (HOME with the VM trusted, ssh on PATH) and a project dir."""
    env = os.environ | ssh_setup(vm, work)
    env["REMOTEBOTTLE_HOME"] = str(work / "rbhome")
    project = work / "project"
    project.mkdir()
    manifest = MANIFEST | {"hosts": {"vm": vm.hosts_entry()}}
    (project / "claude-bottle.json").write_text(json.dumps(manifest))
    return env, project


if __name__ == "__main__":
    main()
